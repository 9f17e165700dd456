"""ExperienceMean alone (no GP), leave-one-family-out: zero-shot and blend vs per-config mean and last value."""
import sys, math, numpy as np, torch
torch.set_num_threads(1)
from lit_transfer.metadataset.store import MetaDataset
from lit_transfer.metadataset.summary import family_of
from lit_transfer.metadataset.features import TASK_FEATURES
from lit_transfer.surrogate.data import Encoding, RunTable
from lit_transfer.surrogate.experience import ExperienceMean
from lit_transfer.surrogate.evaluate import tau
path = sys.argv[1]
enc = Encoding()
with MetaDataset(path) as s:
    table = RunTable.from_store(s, enc); keys = [r.config_key for r in s.runs()]
rows = [i for i in range(len(table.tasks)) if not torch.isnan(table.target[i]).any()]
tasks = [table.tasks[i] for i in rows]; fams = [family_of(t) for t in tasks]
res = {}
for fam in sorted(set(fams)):
    tr = [r for r, f in zip(rows, fams) if f != fam]
    feats = torch.stack([table.task_features[t] for t in sorted({table.tasks[r] for r in tr})])
    mu, sd = feats.mean(0), feats.std(0, unbiased=False); sd = torch.where(sd < 1e-3, torch.ones_like(sd), sd)
    norm = lambda x: (x - mu) / sd
    e = ExperienceMean(enc.config_dim, len(enc.task_features), enc.max_epochs)
    trt = [table.tasks[r] for r in tr]
    e.remember(table.config[tr], trt, [family_of(t) for t in trt], table.task_features, table.target[tr])
    choice = e.choose_scales(norm, tau); e.fit_blend(norm)
    trkeys = {}
    for r in tr: trkeys.setdefault(keys[r], []).append(float(table.target[r, -1]))
    for task in sorted({t for t, f in zip(tasks, fams) if f == fam}):
        te = [r for r in rows if table.tasks[r] == task]
        Y = table.target[te]; actual = Y[:, -1].numpy()
        f = table.task_features[task].expand(len(te), -1)
        with torch.no_grad():
            curve, _, _ = e(table.config[te].float(), f, norm(e.tasks), norm(f))
        out = res.setdefault(fam + "/" + task, {})
        out["zero"] = tau(curve[:, -1].numpy(), actual)
        sh = [j for j, r in enumerate(te) if keys[r] in trkeys]
        out["zero_sh"] = tau(curve[sh, -1].numpy(), actual[sh]) if len(sh) > 1 else None
        out["mean_cfg_sh"] = tau([np.mean(trkeys[keys[te[j]]]) for j in sh], actual[sh]) if len(sh) > 1 else None
        for k in (1, 3):
            b = e.blend[k, -1]
            pred = b[0] * curve[:, -1] + b[1] * Y[:, k - 1] + b[2] * curve[:, k - 1] + b[3]
            out[f"blend{k}"] = tau(pred.numpy(), actual); out[f"last{k}"] = tau(Y[:, k - 1].numpy(), actual)
    print(fam, choice, flush=True)
keysum = ["zero", "zero_sh", "mean_cfg_sh", "blend1", "last1", "blend3", "last3"]
print("MEAN", {k: round(float(np.mean([v[k] for v in res.values() if v[k] is not None])), 3) for k in keysum})
for k in ("blend1", "blend3"):
    l = "last" + k[-1]; print(k, "> last on", sum(v[k] > v[l] for v in res.values()), "of", len(res))
print("zero_sh >= mean_cfg on", sum(v["zero_sh"] >= v["mean_cfg_sh"] for v in res.values() if v["zero_sh"] is not None), "of", len(res))
