# Sourced by the GPU-machine scripts (gpu_check.sh, gpu_bench8b.sh) from the
# repository root with the carry folder as $1 (its pack.tgz from gpu_pack.sh
# is unpacked into /tmp/paca-carry): sets carry, out, bin and the
# library path (libpaca beside the binaries; cuBLASLt and NCCL, both opened
# with dlopen, from the toolkit or from the pip wheels PyTorch brings).
carry=${1:-gpu-carry}
if [ -f "$carry/pack.tgz" ]; then  # gpu_pack.sh's archive: unpacked again whenever it changed
  sum=$(cksum <"$carry/pack.tgz")
  if [ "$(cat /tmp/paca-carry/.unpacked 2>/dev/null)" != "$sum" ]; then
    rm -rf /tmp/paca-carry && mkdir -p /tmp/paca-carry && tar -C /tmp/paca-carry -xzf "$carry/pack.tgz" &&
      echo "$sum" >/tmp/paca-carry/.unpacked
  fi
  carry=/tmp/paca-carry
fi
out=${OUT:-gpu-out}
mkdir -p "$out"
bin=$carry/bin
export PACA_SHARED_DIR=$carry  # the tests read $PACA_SHARED_DIR/models
lt=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null || true)
nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$carry/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib${lt:+:$lt}${nccl:+:$nccl}:${LD_LIBRARY_PATH:-}"
