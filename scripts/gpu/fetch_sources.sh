#!/usr/bin/env bash
# Put the pinned sources of msccl-executor-nccl and nccl-tests under DEST (default .gpu-carry/src).
#
#   scripts/gpu/fetch_sources.sh [DEST]
#
# Each tree is a plain export of one commit (no .git), so it can be copied to a build machine that
# cannot reach GitHub. EXECUTOR_GIT_DIR / TESTS_GIT_DIR may name local clones (git directories) to
# export from instead of cloning.
set -euo pipefail

DEST=${1:-.gpu-carry/src}
EXECUTOR_URL=https://github.com/Azure/msccl-executor-nccl
EXECUTOR_COMMIT=c6f6b36d1a4c7ae44916fcc5c8e32c95cce2ae54   # 2024-12-13, last commit, NCCL 2.23.4 base
TESTS_URL=https://github.com/NVIDIA/nccl-tests
TESTS_COMMIT=a0b82b2260cf5152b9f8c061bbf7eaf0ba096432      # 2026-07-09, NCCL_TESTS_VERSION 2.19.6

export_tree() {  # NAME URL COMMIT [GIT_DIR]
  local name=$1 url=$2 commit=$3 git_dir=${4:-} clone=""
  if [[ -z $git_dir ]]; then
    clone=$(mktemp -d)
    git clone --quiet "$url" "$clone"
    git_dir=$clone/.git
  fi
  rm -rf "${DEST:?}/$name"
  mkdir -p "$DEST/$name"
  git --git-dir="$git_dir" archive "$commit" | tar -x -C "$DEST/$name"
  echo "$url $commit" > "$DEST/$name/SOURCE"
  [[ -z $clone ]] || rm -rf "$clone"
}

export_tree msccl-executor-nccl "$EXECUTOR_URL" "$EXECUTOR_COMMIT" "${EXECUTOR_GIT_DIR:-}"
export_tree nccl-tests "$TESTS_URL" "$TESTS_COMMIT" "${TESTS_GIT_DIR:-}"
du -sh "$DEST"/*
