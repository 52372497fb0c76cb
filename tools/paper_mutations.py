"""Hand mutations of the paper-specific code (issue 11, item 5): apply each alone, run the test that
must catch it, restore the file. Prints a markdown table (docs/paper-equations.md).

    .venv/bin/python tools/paper_mutations.py            # all
    .venv/bin/python tools/paper_mutations.py LMCL fit   # only mutations whose name contains a word
    .venv/bin/python tools/paper_mutations.py --from 29  # from the 30th on (the ones issue-11b added)

A mutation is one (file, old, new) edit or several (a list of (old, new) pairs in one file); each
``old`` must occur exactly once. The last field selects the test: a ``-k`` key into
tests/engine/test_paper_equations.py, or ``path::key`` for a test in another file. CAUGHT means the selected tests failed (pytest exit status 1, i.e.
an assertion, not a collection or import error: those are reported as ERROR).
"""
import subprocess, sys, pathlib
R = pathlib.Path(__file__).resolve().parents[1]
T = "tests/engine/test_paper_equations.py"
QI, IRV2, HAB, MRI, AN = ("engine/models/qi.py", "engine/models/inception_resnet_v2.py", "engine/models/habib.py",
                          "engine/models/mri_attention.py", "engine/models/an.py")
SAL = "tests/engine/test_saliency.py::eq3_of_the_argmax"
FIT = "tests/engine/test_paper_training.py::algorithm1_through_fit"
MRDEF = "tests/engine/test_default_models.py::cards_test_auc"
BOX = "tests/engine/test_inference.py::refuses_to_score_without_a_box"
CAM, TF = "engine/saliency/cam.py", "engine/transforms/__init__.py"
M = [
 ("region-enhance sign", QI, "a = a + self.lam * self.cam_path", "a = a - self.lam * self.cam_path", "region_enhance"),
 ("region-enhance lambda dropped", QI, "a = a + self.lam * self.cam_path", "a = a + self.cam_path", "region_enhance"),
 ("region-enhance multiplicative", QI, "a = a + self.lam * self.cam_path", "a = a * self.lam * self.cam_path", "region_enhance"),
 ("Sn-Net enhance point after Mixed_6b", QI, "net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,\n        )", "net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b,\n        )", "region_enhance"),
 ("Mt-Net enhance point before block(17)", IRV2, "return self.repeat_17(self.mixed_6a(x))", "return self.mixed_6a(x)", "region_enhance"),
 ("Alg.1 (2-optimiser): Mt-Net gets its own CAM", QI, "cam_mt_in = cam_sn", "cam_mt_in = cam_mt", "two_optimiser"),
 ("Alg.1 (2-optimiser): Sn-Net gets no CAM", QI, "loss_sn = F.cross_entropy(sn(images, cam_mt), y_sn.long())", "loss_sn = F.cross_entropy(sn(images, None), y_sn.long())", "two_optimiser"),
 ("Alg.1 (2-optimiser): branch inverted", QI, "with_cam = p >= 0.5", "with_cam = p < 0.5", "two_optimiser"),
 ("Alg.1 (fit): Mt-Net gets CAM^Mt", QI, "loss_mt = F.cross_entropy(self.mt(x, cam_sn).float()", "loss_mt = F.cross_entropy(self.mt(x, cam_mt).float()", "fit_path"),
 ("Alg.1 (fit): Sn-Net gets no CAM", QI, "loss_sn = F.cross_entropy(self.sn(x, cam_mt).float()", "loss_sn = F.cross_entropy(self.sn(x, None).float()", "fit_path"),
 ("CAM fixed class", QI, "c = logits.argmax(dim=1)", "c = torch.ones_like(logits.argmax(dim=1))", "argmax"),
 ("five crops not uniformly spaced", "engine/imaging/geometry.py", "torch.linspace(0, max(0, total - size), 5)", "torch.linspace(0, max(0, total - size) // 2, 5)", "uniformly_spaced"),
 ("five crops: max instead of mean", "engine/inference/predictor.py", "vals.view(len(preps), per).mean(dim=1)", "vals.view(len(preps), per).amax(dim=1)", "mean_of_the_crops"),
 ("LMCL margin sign", HAB, "logits - s * m * onehot", "logits + s * m * onehot", "lmcl"),
 ("LMCL margin value", HAB, "logits - s * m * onehot", "logits - s * 0.5 * onehot", "lmcl"),
 ("LMCL no feature normalisation", HAB, "F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))", "F.linear(x, F.normalize(self.weight, dim=1))", "lmcl"),
 ("LMCL no weight normalisation", HAB, "F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))", "F.linear(F.normalize(x, dim=1), self.weight)", "lmcl"),
 ("attention BCE target inverted", MRI, "return F.binary_cross_entropy(attention.clamp(1e-6, 1 - 1e-6), masks.to(attention.dtype))", "return F.binary_cross_entropy(attention.clamp(1e-6, 1 - 1e-6), 1 - masks.to(attention.dtype))", "targets_the_box"),
 ("attention BCE unbalanced", MRI, "return -(pw * m * torch.log(a)", "return -(m * torch.log(a)", "balanced_attention"),
 ("balanced attention target inverted", MRI, "    m = masks.to(a.dtype)\n    pw", "    m = 1 - masks.to(a.dtype)\n    pw", "balanced_attention"),
 ("entropy saliency -> logit gradient", AN, "h = -(logp.exp() * logp).sum(1)", "h = logits.float()[:, 1]", "entropy_saliency"),
 ("entropy saliency -> probability gradient", AN, "h = -(logp.exp() * logp).sum(1)", "h = logp.exp()[:, 1]", "entropy_saliency"),
 ("negative patches enter the saliency", AN, "            if pr >= 0.5:", "            if True:", "positive_patches"),
 ("heatmap mask ignored", AN, "    out[~inside] = 0.0\n", "", "positive_patches"),
 ("heatmap target without blur", AN, "t = gaussian_filter(t, sigma).astype(np.float32)", "t = t.astype(np.float32)", "blurred_annotation"),
 ("heatmap target other sigma", AN, "t = gaussian_filter(t, sigma).astype(np.float32)", "t = gaussian_filter(t, 2 * sigma).astype(np.float32)", "blurred_annotation"),
 ("Block35 scale 0.17 -> 0.2", IRV2, "def __init__(self, scale: float = 0.17)", "def __init__(self, scale: float = 0.2)", "residual_is_scaled"),
 ("Block17 unscaled residual", IRV2, "return self.relu(x + self.scale * self.proj(torch.cat([self.b0(x), self.b1(x)], 1)))\n\n\nclass Mixed7a", "return self.relu(x + self.proj(torch.cat([self.b0(x), self.b1(x)], 1)))\n\n\nclass Mixed7a", "residual_is_scaled"),
 ("Block8 scale 0.2 -> 0.1", IRV2, "def __init__(self, scale: float = 0.20, no_relu", "def __init__(self, scale: float = 0.10, no_relu", "residual_is_scaled"),

 # -- added by issue-11b: further variants of each listed mutation, and the paths the first set missed
 ("CAM fixed class 0", QI, "c = logits.argmax(dim=1)", "c = torch.zeros_like(logits.argmax(dim=1))", "argmax"),
 ("CAM of the arg-min class", QI, "c = logits.argmax(dim=1)", "c = logits.argmin(dim=1)", "argmax"),
 ("Sn-Net enhance point before Mixed_6a", QI, [("net.Mixed_5d, net.Mixed_6a,\n        )", "net.Mixed_5d,\n        )"),
                                            ("            net.Mixed_6b, net.Mixed_6c,", "            net.Mixed_6a, net.Mixed_6b, net.Mixed_6c,")], "region_enhance"),
 ("Mt-Net enhance point after reduction-B", IRV2, [("return self.repeat_17(self.mixed_6a(x))", "return self.mixed_7a(self.repeat_17(self.mixed_6a(x)))"),
                                                   ("self.repeat_8(self.mixed_7a(a))", "self.repeat_8(a)")], "region_enhance"),
 ("Alg.1 (fit): branch inverted", QI, "with_cam = float(torch.rand(())) >= 0.5", "with_cam = float(torch.rand(())) < 0.5", "fit_path"),
 ("Alg.1 (2-optimiser): Sn-Net's CAM^Mt from the enhanced Mt-Net", QI,
  "    with torch.no_grad():\n        f = mt.forward_features(images)\n        cam_mt = mt.cam_from_features(f, mt.forward_head(f), size)\n    opt_sn",
  "    with torch.no_grad():\n        f = mt.forward_features(images, cam_mt_in)\n        cam_mt = mt.cam_from_features(f, mt.forward_head(f), size)\n    opt_sn", "two_optimiser"),
 ("REM inference: Mt-Net fed its own CAM", QI, "return self.mt(x, cam_sn.detach()), sn_logits", "return self.mt(x, cam_mt), sn_logits", "rem_inference"),
 ("REM inference: Mt-Net fed no CAM", QI, "return self.mt(x, cam_sn.detach()), sn_logits", "return self.mt(x), sn_logits", "rem_inference"),
 ("REM inference: Sn-Net fed no CAM", QI, "sn_logits, cam_sn = self.sn.forward_with_cam(x, cam_mt)", "sn_logits, cam_sn = self.sn.forward_with_cam(x)", "rem_inference"),
 ("five crops all at the centre", "engine/imaging/geometry.py", "return [int(v) for v in torch.linspace(0, max(0, total - size), 5).round().long().tolist()]",
  "return [max(0, total - size) // 2] * 5", "uniformly_spaced"),
 ("five crops: first crop only (predict)", "engine/inference/predictor.py", "vals.view(len(preps), per).mean(dim=1)", "vals.view(len(preps), per)[:, 0]", "mean_of_the_crops"),
 ("five crops: max in Predictor.run (saliency pass)", "engine/inference/predictor.py", ".view(len(chunk), per).mean(dim=1)", ".view(len(chunk), per).amax(dim=1)", "mean_of_the_crops"),
 ("five crops: first crop in qi.multi_input_predict", QI, "return float(p.mean())", "return float(p[0])", "mean_of_the_crops"),
 ("five crops: max in fit / evaluate / predict", "engine/train/steps.py", "return s.reshape(n, k, *s.shape[1:]).mean(dim=1)", "return s.reshape(n, k, *s.shape[1:]).amax(dim=1)", "average_the_five"),
 ("five crops: first crop in fit / evaluate / predict", "engine/train/steps.py", "return s.reshape(n, k, *s.shape[1:]).mean(dim=1)", "return s.reshape(n, k, *s.shape[1:])[:, 0]", "average_the_five"),
 ("LMCL margin on the other class", HAB, "logits - s * m * onehot", "logits - s * m * (1 - onehot)", "lmcl"),
 ("LMCL margin not scaled by s", HAB, "logits - s * m * onehot", "logits - m * onehot", "lmcl"),
 ("LMCL head without the scale s", HAB, "return self.s * F.linear(", "return F.linear(", "lmcl"),
 ("Habib net trains without its head's margin", HAB, 'm = getattr(self.head, "m", 0.35)', "m = 0.0", "own_head"),
 ("Habib net trains with the default scale", HAB, 's = getattr(self.head, "s", 30.0)', "s = 30.0", "own_head"),
 ("Habib fusion trains with the default scale", HAB, 'loss=self.loss_kind, s=getattr(self.head, "s", 30.0),', "loss=self.loss_kind, s=30.0,", "own_head"),
 ("balanced attention weight inverted (inside/outside)", MRI, "pw = ((1 - m).sum() / m.sum().clamp_min(1)).detach()",
  "pw = (m.sum() / (1 - m).sum().clamp_min(1)).detach()", "balanced_attention"),
 ("MRI training_step ignores attention_balance", MRI, "term = balanced_attention_loss(a, masks) if self.attention_balance else attention_loss(a, masks)",
  "term = attention_loss(a, masks)", "mri_training"),
 ("MRI training_step always balanced", MRI, "term = balanced_attention_loss(a, masks) if self.attention_balance else attention_loss(a, masks)",
  "term = balanced_attention_loss(a, masks)", "mri_training"),
 ("MRI training_step drops the attention term", MRI, "return loss + self.attention_weight * term", "return loss", "mri_training"),
 ("MRI box mask inverted", MRI, "return (down > 0).float()[0]", "return (down <= 0).float()[0]", "mri_training"),
 ("entropy saliency: signed gradient", AN, "return g.abs().sum(1).detach()", "return g.sum(1).detach()", "entropy_saliency"),
 ("entropy saliency -> top-class log-probability gradient", AN, "h = -(logp.exp() * logp).sum(1)", "h = logp.max(1).values", "entropy_saliency"),
 ("only negative patches enter the saliency", AN, "            if pr >= 0.5:", "            if pr < 0.5:", "positive_patches"),
 ("heatmap target not max-normalised", AN, "return t / m if m > 0 else t", "return t", "blurred_annotation"),
 ("Block35 unscaled residual", IRV2, "return self.relu(x + self.scale * r)", "return self.relu(x + r)", "residual_is_scaled"),
 ("Block17 ReLU before the residual sum", IRV2, "return self.relu(x + self.scale * self.proj(torch.cat([self.b0(x), self.b1(x)], 1)))\n\n\nclass Mixed7a",
  "return x + self.relu(self.scale * self.proj(torch.cat([self.b0(x), self.b1(x)], 1)))\n\n\nclass Mixed7a", "residual_is_scaled"),

 # -- added by issue-11 (i11): the replacements of the vacuous Qi CAM / Algorithm-1-through-fit /
 # MR-default / lesion-box checks, each run against the mutation it must catch
 ("CAM fixed class (saliency test)", QI, "c = logits.argmax(dim=1)", "c = torch.ones_like(logits.argmax(dim=1))", SAL),
 ("CAM fixed class 0 (saliency test)", QI, "c = logits.argmax(dim=1)", "c = torch.zeros_like(logits.argmax(dim=1))", SAL),
 ("CAM of the arg-min class (saliency test)", QI, "c = logits.argmax(dim=1)", "c = logits.argmin(dim=1)", SAL),
 ("CAMSaliency 'predicted' uses the malignant class", CAM,
  'c = int(logits.argmax(1)[0]) if self.target == "predicted"', 'c = 1 if self.target == "predicted"', SAL),
 ("Alg.1 (fit) through fit: Mt-Net gets CAM^Mt", QI, "loss_mt = F.cross_entropy(self.mt(x, cam_sn).float()", "loss_mt = F.cross_entropy(self.mt(x, cam_mt).float()", FIT),
 ("Alg.1 (fit) through fit: Sn-Net gets no CAM", QI, "loss_sn = F.cross_entropy(self.sn(x, cam_mt).float()", "loss_sn = F.cross_entropy(self.sn(x, None).float()", FIT),
 ("Alg.1 (fit) through fit: Sn-Net gets CAM^Sn", QI, [("cam_sn = self.sn.forward_with_cam(x, cam_mt)[1] if with_cam else None", "cam_sn = self.sn.forward_with_cam(x, cam_mt)[1]"),
                                                      ("loss_mt = F.cross_entropy(self.mt(x, cam_sn).float()", "loss_mt = F.cross_entropy(self.mt(x, cam_sn if with_cam else None).float()"),
                                                      ("loss_sn = F.cross_entropy(self.sn(x, cam_mt).float()", "loss_sn = F.cross_entropy(self.sn(x, cam_sn).float()")], FIT),
 ("Alg.1 (fit) through fit: Mt-Net never gets a CAM", QI, "with_cam = float(torch.rand(())) >= 0.5", "with_cam = float(torch.rand(())) > 2.0", FIT),
 ("REM inference through fit: Mt-Net fed its own CAM", QI, "return self.mt(x, cam_sn.detach()), sn_logits", "return self.mt(x, cam_mt), sn_logits", FIT),
 ("cascade advice: Sn-Net ignored", QI, "if p_malignant >= t_malignant or p_solid >= t_solid:", "if p_malignant >= t_malignant:", FIT),
 ("MR default: another output read as malignancy", "engine/models/common.py", "return p[:, self.malignant_index if p.shape[1] > 1 else 0]", "return p[:, 1 if p.shape[1] > 1 else 0]", MRDEF),
 ("MR default: 0.5-99.5 percentile window -> min-max", "engine/imaging/intensity.py", "lo_pct: float = 0.5, hi_pct: float = 99.5", "lo_pct: float = 0.0, hi_pct: float = 100.0", MRDEF),
 ("MR default: input normalisation skipped", TF, "        t = self.normalise(t)\n        used", "        used", MRDEF),
 ("lesion box ignored", TF, "        if b is not None:\n            region = expand_box", "        if False:\n            region = expand_box", BOX),
 ("lesion box margin 0.15 -> 0.1", TF, "region = expand_box(b, shape, pre.box_margin)", "region = expand_box(b, shape, 0.1)", BOX),
 ("BASIC = REM at 112 px (lambda ignored)", QI, "a = a + self.lam * self.cam_path", "a = a + 0.0 * self.cam_path", "tests/engine/test_paper_training.py::basic_and_rem"),
]
args = sys.argv[1:]
start = int(args.pop(args.index("--from") + 1)) if "--from" in args else 0  # --from K: the K-th mutation on
words = [a for a in args if a != "--from"]
rows = []
for name, f, *edit, sel in M[start:]:
    if words and not any(w.lower() in name.lower() for w in words):
        continue
    pairs = edit[0] if len(edit) == 1 else [(edit[0], edit[1])]
    p = R / f
    src = p.read_text()
    bad = [old for old, _ in pairs if src.count(old) != 1]
    if bad:
        rows.append((name, f"PATTERN NOT UNIQUE/FOUND", f"{f}: {bad[0][:60]!r}"))
        print(rows[-1], flush=True)
        continue
    mutated = src
    for old, new in pairs:
        mutated = mutated.replace(old, new)
    p.write_text(mutated)
    try:
        test, key = sel.split("::") if "::" in sel else (T, sel)
        r = subprocess.run([str(R / ".venv/bin/python"), "-m", "pytest", "-q", "-x", test, "-k", key, "-p", "no:warnings",
                            "-p", "no:cacheprovider"],
                           cwd=R, capture_output=True, text=True, timeout=900, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
        status = {0: "SURVIVED", 1: "CAUGHT"}.get(r.returncode, f"ERROR rc={r.returncode}")
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-200:]
    finally:
        p.write_text(src)
    rows.append((name, status, f"{sel}: {last}"))
    print(rows[-1], flush=True)
print("\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows))
sys.exit(0 if all(b == "CAUGHT" for _, b, _ in rows) else 1)
