"""Hand mutations of the paper-specific code (issue 11, item 5): apply each alone, run the test that
must catch it, restore the file. Prints a markdown table (docs/paper-equations.md).

    .venv/bin/python tools/paper_mutations.py
"""
import subprocess, sys, pathlib
R = pathlib.Path(__file__).resolve().parents[1]
T = "tests/engine/test_paper_equations.py"
M = [
 ("region-enhance sign", "engine/models/qi.py", "a = a + self.lam * self.cam_path", "a = a - self.lam * self.cam_path", "region_enhance"),
 ("region-enhance lambda dropped", "engine/models/qi.py", "a = a + self.lam * self.cam_path", "a = a + self.cam_path", "region_enhance"),
 ("region-enhance multiplicative", "engine/models/qi.py", "a = a + self.lam * self.cam_path", "a = a * self.lam * self.cam_path", "region_enhance"),
 ("Sn-Net enhance point after Mixed_6b", "engine/models/qi.py", "net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,\n        )", "net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b,\n        )", "region_enhance"),
 ("Mt-Net enhance point before block(17)", "engine/models/inception_resnet_v2.py", "return self.repeat_17(self.mixed_6a(x))", "return self.mixed_6a(x)", "region_enhance"),
 ("Alg.1 (2-optimiser): Mt-Net gets its own CAM", "engine/models/qi.py", "cam_mt_in = cam_sn", "cam_mt_in = cam_mt", "two_optimiser"),
 ("Alg.1 (2-optimiser): Sn-Net gets no CAM", "engine/models/qi.py", "loss_sn = F.cross_entropy(sn(images, cam_mt), y_sn.long())", "loss_sn = F.cross_entropy(sn(images, None), y_sn.long())", "two_optimiser"),
 ("Alg.1 (2-optimiser): branch inverted", "engine/models/qi.py", "with_cam = p >= 0.5", "with_cam = p < 0.5", "two_optimiser"),
 ("Alg.1 (fit): Mt-Net gets CAM^Mt", "engine/models/qi.py", "loss_mt = F.cross_entropy(self.mt(x, cam_sn).float()", "loss_mt = F.cross_entropy(self.mt(x, cam_mt).float()", "fit_path"),
 ("Alg.1 (fit): Sn-Net gets no CAM", "engine/models/qi.py", "loss_sn = F.cross_entropy(self.sn(x, cam_mt).float()", "loss_sn = F.cross_entropy(self.sn(x, None).float()", "fit_path"),
 ("CAM fixed class", "engine/models/qi.py", "c = logits.argmax(dim=1)", "c = torch.ones_like(logits.argmax(dim=1))", "argmax"),
 ("five crops not uniformly spaced", "engine/imaging/geometry.py", "torch.linspace(0, max(0, total - size), 5)", "torch.linspace(0, max(0, total - size) // 2, 5)", "uniformly_spaced"),
 ("five crops: max instead of mean", "engine/inference/predictor.py", "vals.view(len(preps), per).mean(dim=1)", "vals.view(len(preps), per).amax(dim=1)", "mean_of_the_crops"),
 ("LMCL margin sign", "engine/models/habib.py", "logits - s * m * onehot", "logits + s * m * onehot", "lmcl"),
 ("LMCL margin value", "engine/models/habib.py", "logits - s * m * onehot", "logits - s * 0.5 * onehot", "lmcl"),
 ("LMCL no feature normalisation", "engine/models/habib.py", "F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))", "F.linear(x, F.normalize(self.weight, dim=1))", "lmcl"),
 ("LMCL no weight normalisation", "engine/models/habib.py", "F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))", "F.linear(F.normalize(x, dim=1), self.weight)", "lmcl"),
 ("attention BCE target inverted", "engine/models/mri_attention.py", "return F.binary_cross_entropy(attention.clamp(1e-6, 1 - 1e-6), masks.to(attention.dtype))", "return F.binary_cross_entropy(attention.clamp(1e-6, 1 - 1e-6), 1 - masks.to(attention.dtype))", "targets_the_box"),
 ("attention BCE unbalanced", "engine/models/mri_attention.py", "return -(pw * m * torch.log(a)", "return -(m * torch.log(a)", "balanced_attention"),
 ("balanced attention target inverted", "engine/models/mri_attention.py", "    m = masks.to(a.dtype)\n    pw", "    m = 1 - masks.to(a.dtype)\n    pw", "balanced_attention"),
 ("entropy saliency -> logit gradient", "engine/models/an.py", "h = -(logp.exp() * logp).sum(1)", "h = logits.float()[:, 1]", "entropy_saliency"),
 ("entropy saliency -> probability gradient", "engine/models/an.py", "h = -(logp.exp() * logp).sum(1)", "h = logp.exp()[:, 1]", "entropy_saliency"),
 ("negative patches enter the saliency", "engine/models/an.py", "            if pr >= 0.5:", "            if True:", "positive_patches"),
 ("heatmap mask ignored", "engine/models/an.py", "    out[~inside] = 0.0\n", "", "positive_patches"),
 ("heatmap target without blur", "engine/models/an.py", "t = gaussian_filter(t, sigma).astype(np.float32)", "t = t.astype(np.float32)", "blurred_annotation"),
 ("heatmap target other sigma", "engine/models/an.py", "t = gaussian_filter(t, sigma).astype(np.float32)", "t = gaussian_filter(t, 2 * sigma).astype(np.float32)", "blurred_annotation"),
 ("Block35 scale 0.17 -> 0.2", "engine/models/inception_resnet_v2.py", "def __init__(self, scale: float = 0.17)", "def __init__(self, scale: float = 0.2)", "residual_is_scaled"),
 ("Block17 unscaled residual", "engine/models/inception_resnet_v2.py", "return self.relu(x + self.scale * self.proj(torch.cat([self.b0(x), self.b1(x)], 1)))\n\n\nclass Mixed7a", "return self.relu(x + self.proj(torch.cat([self.b0(x), self.b1(x)], 1)))\n\n\nclass Mixed7a", "residual_is_scaled"),
 ("Block8 scale 0.2 -> 0.1", "engine/models/inception_resnet_v2.py", "def __init__(self, scale: float = 0.20, no_relu", "def __init__(self, scale: float = 0.10, no_relu", "residual_is_scaled"),
]
rows = []
for name, f, old, new, sel in M:
    p = R / f
    src = p.read_text()
    n = src.count(old)
    if n != 1:
        rows.append((name, f"PATTERN x{n}", sel)); continue
    p.write_text(src.replace(old, new))
    try:
        r = subprocess.run([str(R / ".venv/bin/python"), "-m", "pytest", "-q", "-x", T, "-k", sel, "-p", "no:warnings"],
                           cwd=R, capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
        status = "CAUGHT" if r.returncode != 0 else "SURVIVED"
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-200:]
    finally:
        p.write_text(src)
    rows.append((name, status, f"{sel}: {last}"))
    print(rows[-1], flush=True)
print("\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows))
