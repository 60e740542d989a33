# Accuracy of one fine-tuned run in f32, bf16 and int8 (mse, percentile, max): nn eval top-1/top-5 on
# the run's validation split, and the agreement of nn predict's top-1 with float32 on every photo.
# usage: /usr/bin/python3 tools/scripts/precision_accuracy.py NN RUN_DIR OUT_DIR PHOTOS_VAL_DIR
import json, subprocess, sys, os, glob
nn, run, out, photos = sys.argv[1:5]
os.makedirs(out, exist_ok=True)
def sh(*a):
    return subprocess.run(a, check=True, capture_output=True, text=True).stdout
sh(nn, "export", f"{run}/final.nnm", "-o", f"{out}/f32.nnm")
sh(nn, "export", f"{run}/final.nnm", "--precision", "bf16", "-o", f"{out}/bf16.nnm")
for m in ["mse", "percentile", "max"]:
    sh(nn, "quantize", f"{run}/final.nnm", "--calibrate", f"{run}/data", "--images", "500", "--method", m, "-o", f"{out}/int8-{m}.nnm", "-q")
files = sorted(glob.glob(f"{photos}/*/*.jpg") + glob.glob(f"{photos}/*/*.jpeg") + glob.glob(f"{photos}/*/*.png"))
preds = {}
for p in ["f32", "bf16", "int8-mse", "int8-percentile", "int8-max"]:
    ev = json.loads(sh(nn, "eval", f"{out}/{p}.nnm", "--data", f"{run}/data", "--json", "-q"))
    pr = subprocess.run([nn, "predict", f"{out}/{p}.nnm", "--json", "--top", "1", "--batch", "16"] + files, capture_output=True, text=True).stdout
    top = [json.loads(l) for l in pr.splitlines() if l.strip().startswith("{")]
    preds[p] = top
    size = os.path.getsize(f"{out}/{p}.nnm")
    print(p, "size_MB=%.1f" % (size / 1e6), "top1=%.4f" % ev["top1"], "top5=%.4f" % ev["top5"], "n=%d" % ev["count"], flush=True)
json.dump(preds, open(f"{out}/preds.json", "w"))
base = {d["image"]: d["predictions"][0]["id"] for d in preds["f32"] if "predictions" in d}
for p in preds:
    other = {d["image"]: d["predictions"][0]["id"] for d in preds[p] if "predictions" in d}
    same = sum(1 for k in base if other.get(k) == base[k])
    print(p, "agreement_with_f32=%d/%d=%.4f" % (same, len(base), same / max(1, len(base))))
