#!/usr/bin/env bash
# Start MONAI Label 0.8.5 on 127.0.0.1 with every bundle under bundles/ (served and trained from local folders:
# no model-zoo download, no SAM2), the `label_quality` scoring method and the `suspect_label_first` strategy.
#
#   scripts/monailabel_app.sh STUDIES_DIR [PORT] [more start_server arguments, e.g. --conf label_quality_bundle B]
#
# STUDIES_DIR is the datastore: a folder of images (MONAI Label keeps the annotators' labels in
# STUDIES_DIR/labels/final). PORT defaults to 8000. The app (examples/monailabel/main.py) and a copy of each
# bundle go to $MONAI_NOISYLABEL_APP_DIR (default <repo>/.monailabel_app): the bundle configs are refreshed from
# bundles/ on every start, trained models (model/<bundle>/models/model.pt) stay. The first start builds the
# MONAI Label environment (scripts/setup_monailabel_env.sh, several minutes, then cached).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$#" -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 STUDIES_DIR [PORT]   (STUDIES_DIR: an existing folder of images; got '${1:-}')" >&2
    exit 2
fi
STUDIES="$(cd "$1" && pwd)"
PORT="${2:-8000}"
shift $(( $# < 2 ? $# : 2 ))
APP_DIR="${MONAI_NOISYLABEL_APP_DIR:-$ROOT/.monailabel_app}"
ML_PY="$(bash "$ROOT/scripts/setup_monailabel_env.sh" | tail -n 1)"

mkdir -p "$APP_DIR/model"
cp "$ROOT/examples/monailabel/main.py" "$APP_DIR/main.py"
for bundle in "$ROOT"/bundles/*/; do
    name="$(basename "$bundle")"
    [ -f "$bundle/configs/inference.json" ] || [ -f "$bundle/configs/train.json" ] || continue
    dst="$APP_DIR/model/$name"
    mkdir -p "$dst/models"
    rm -rf "$dst/configs" "$dst/docs"
    cp -r "$bundle/configs" "$dst/configs"
    [ -d "$bundle/docs" ] && cp -r "$bundle/docs" "$dst/docs"
    # a model shipped with the bundle seeds the copy; one trained in MONAI Label is never replaced
    for model in "$bundle"/models/*.pt; do
        [ -f "$model" ] && [ ! -f "$dst/models/$(basename "$model")" ] && cp "$model" "$dst/models/"
    done
    echo "[monailabel] bundle $name -> $dst" >&2
done

# NoisyLabelApp reads only the local bundle folders given here: it has no model-zoo source and no SAM2 task
exec "$ML_PY" -m monailabel.main start_server --app "$APP_DIR" --studies "$STUDIES" \
    --host 127.0.0.1 --port "$PORT" --conf bundles "$APP_DIR/model" "$@"
