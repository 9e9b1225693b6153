#!/bin/sh
# Triton's init step (triton.yaml): build the TensorRT engine plan of every version exported with
# `strata export --backend tensorrt --plans-on-serving-gpu`, on the GPU that will serve it, with NVIDIA's trtexec
# from the TensorRT image of Triton's release (a plan only loads under the TensorRT version that built it).
# A version folder qualifies when it holds model.onnx and model.plan.shapes (trtexec's flags, written by the
# export) and no model.plan yet; built plans are kept, so a restart builds only what is new.
set -eu
repo=${MODEL_REPOSITORY:-/models}
trtexec=$(command -v trtexec || ls /opt/tensorrt/bin/trtexec /usr/src/tensorrt/bin/trtexec 2>/dev/null | head -n 1) || true
built=0
for shapes in "$repo"/*/*/model.plan.shapes; do
    [ -f "$shapes" ] || continue
    folder=$(dirname "$shapes")
    rm -f "$folder/model.plan.tmp"   # left by a step that was stopped mid-copy
    [ -f "$folder/model.plan" ] && continue
    [ -n "$trtexec" ] || { echo "build-plans: no trtexec in this image (expected NVIDIA's TensorRT image)" >&2; exit 1; }
    echo "build-plans: $folder"
    scratch=$(mktemp)
    # shellcheck disable=SC2046 # the shapes file holds several flags
    "$trtexec" --onnx="$folder/model.onnx" --saveEngine="$scratch" --skipInference $(cat "$shapes")
    cp "$scratch" "$folder/model.plan.tmp" && rm -f "$scratch"
    mv "$folder/model.plan.tmp" "$folder/model.plan"   # whole or absent: the rename is atomic on the volume
    built=$((built + 1))
done
echo "build-plans: $built plan(s) built in $repo"
