"""Pure numpy/torch image helpers shared by display, training and inference.

* :mod:`engine.imaging.intensity`: intensities to [0, 1], colour to luminance;
* :mod:`engine.imaging.geometry`: lesion boxes with margin, shorter-side resize, Qi's five crops;
* :mod:`engine.imaging.breast`: the one breast mask and the one chest-wall test;
* :mod:`engine.imaging.ultrasound`: the US scan area, burned-in mark removal, scanner-shift augmentation.

Nothing here reads files or knows about models; every model-input path goes through
:mod:`engine.transforms`, which is built from these blocks.
"""
