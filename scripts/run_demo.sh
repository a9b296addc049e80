#!/usr/bin/env bash
# README command 1: the echo bundle end to end with `python -m monai.bundle run`, on the built-in synthetic
# echo data: set up, generate the data, corrupt a known quarter of the training labels (LV cavity dilated,
# originals untouched), train a U-Net while VoG / per-sample loss / GMM / offset score every training label,
# refurbish the flagged labels with pseudo-labels, evaluate on clean test labels, write the report, and print
# the report's path and the detection AUROC against the known corruption.
#
# Default: the CPU demo settings (bundles/echo_noisylabel_segmentation/configs/demo_cpu.json, a few minutes on
# 2 cores). MONAI_NOISYLABEL_DEMO=full runs the bundle's own defaults instead (600 images at 256x256, 40 epochs:
# meant for a GPU). Extra arguments go to both bundle runs, e.g. `--device "\$torch.device('cuda:0')"`.
# Outputs go to demo_output/ (MONAI_NOISYLABEL_DEMO_DIR); a second call resumes from its checkpoint, delete the
# folder to start over.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup_env.sh
source scripts/setup_env.sh

BUNDLE=bundles/echo_noisylabel_segmentation
OUT=${MONAI_NOISYLABEL_DEMO_DIR:-demo_output}
if [[ "${MONAI_NOISYLABEL_DEMO:-cpu}" == "full" ]]; then
    TRAIN="'$BUNDLE/configs/train.json'"
else
    TRAIN="'$BUNDLE/configs/train.json','$BUNDLE/configs/demo_cpu.json'"
fi
COMMON=(--logging_file "$BUNDLE/configs/logging.conf" --bundle_root "$BUNDLE"
    --dataset_dir "$OUT/data" --output_dir "$OUT/run" --ckpt_dir "$OUT/models")

echo "== training (detection + refurbishment) =="
"$NL_PY" -m monai.bundle run --config_file "[$TRAIN]" "${COMMON[@]}" "$@"
echo "== evaluation on the clean test labels =="
"$NL_PY" -m monai.bundle run --config_file "[$TRAIN,'$BUNDLE/configs/evaluate.json']" "${COMMON[@]}" "$@"

"$NL_PY" - "$OUT/run" <<'PY'
import json, sys
from pathlib import Path

run = Path(sys.argv[1])
m = json.loads((run / "detection_metrics.json").read_text())
ev = dict(line.split(",", 1) for line in (run / "eval" / "metrics.csv").read_text().splitlines() if "," in line)
print("\n== summary ==")
print(f"report:              {(run / 'report' / 'index.html').resolve()}")
print(f"label scores:        {(run / 'label_scores.csv').resolve()}")
if "auroc_combined" in m:
    print(f"detection AUROC:     combined {m['auroc_combined']:.3f}  (loss {m.get('auroc_loss', float('nan')):.3f}, "
          f"VoG {m.get('auroc_vog', float('nan')):.3f}, offset {m.get('auroc_offset', float('nan')):.3f})")
print(f"flagged/refurbished: {m['num_flagged']} / {m['num_refurbished']}")
print("test Dice (clean):   " + ", ".join(f"{k[5:]} {float(v):.3f}" for k, v in ev.items() if k.startswith("dice_")))
print("test HD95 (px):      " + ", ".join(f"{k[5:]} {float(v):.2f}" for k, v in ev.items() if k.startswith("hd95_")))
PY
