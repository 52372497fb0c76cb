"""The training datasets, by concern (``engine.train.data`` is the public entry point).

* :mod:`.sources`: where labelled images come from (image folder + CSV, manifest, study) and decoding;
* :mod:`.images`: the preprocessing a config trains with (``spec.transforms()``) and the image datasets;
* :mod:`.paper`: the paper-specific kinds (Habib pairs, MRI boxed slices, SYNTHETIC generators).
"""
