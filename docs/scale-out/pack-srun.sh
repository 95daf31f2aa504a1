#!/bin/bash
# One Slurm allocation, one srun step with a task per shard, then the join in the batch script itself:
#   sbatch --ntasks=8 --export=ALL,IMAGES=/data/imagenet/train,OUT=/scratch/imagenet docs/scale-out/pack-srun.sh
# (or, inside salloc -n 8, run this script directly). srun sets SLURM_PROCID / SLURM_NTASKS for each task,
# which stoke pack takes as its shard I/N. Outside srun the batch step also carries SLURM_PROCID=0 and
# SLURM_NTASKS=N, so only call stoke pack through srun here.
#SBATCH --job-name=stoke-pack-srun
#SBATCH --cpus-per-task=1
#SBATCH --output=stoke-pack-srun-%j.out
set -euo pipefail
: "${IMAGES:?set IMAGES to the ImageFolder root}" "${OUT:?set OUT to the output folder}"
STOKE=${STOKE:-stoke}
RECIPE=${RECIPE:---resize 64x64}
# shellcheck disable=SC2086
srun --ntasks="${SLURM_NTASKS:-2}" "$STOKE" pack --from images "$IMAGES" $RECIPE --workers "${SLURM_CPUS_PER_TASK:-1}" -o "$OUT/train-{shard}.h5"
"$STOKE" join "$OUT"/train-*-of-*.h5 -o "$OUT/train.h5"
