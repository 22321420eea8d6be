#!/usr/bin/env bash
# Trains one nearnd model and publishes its bundle into a model repository:
#   ROOT/<model>/<version>/   the bundle, copied under a temporary name and then renamed
#   ROOT/<model>/current      symbolic link to the newest version, replaced atomically
#
# Usage: nearnd-train-and-publish --model-repository ROOT --dataset D --normal-class N
#          [--model NAME] [--work-dir DIR] [--data-dir DIR] [--keep-versions K]
#          [--skip-fetch-data] [-- MORE_PIPELINE_FLAGS...]
#
# NAME defaults to D-class-N, the model name that `nearnd bundle` writes into the manifest.
# The version is the UTC start time, YYYYMMDDTHHMMSSZ, which is also passed to the pipeline as
# --model-version so that the directory and the manifest agree. After publishing, all but the
# K newest versions are removed; K = 0 keeps every version. Flags after `--` go to
# `nearnd pipeline`, for example --profile paper or --threads 4.
#
# The environment variables NEARND and NEARND_FETCH_DATA override the paths of `nearnd` and
# scripts/fetch-data.
set -euo pipefail

nearnd="${NEARND:-nearnd}"
fetch_data="${NEARND_FETCH_DATA:-/opt/nearnd/scripts/fetch-data}"

model_repository=""
dataset=""
normal_class=""
model=""
work_dir="${TMPDIR:-/tmp}/nearnd-train"
data_dir=""
keep_versions=5
skip_fetch_data=false
pipeline_flags=()

# Set when a copy into the model repository is under way, so that a failure removes it.
partial=""

log() {
  echo "nearnd-train-and-publish: $*" >&2
}

die() {
  log "error: $*"
  exit 1
}

usage() {
  cat >&2 <<'EOF'
Usage: nearnd-train-and-publish --model-repository ROOT --dataset D --normal-class N
         [--model NAME] [--work-dir DIR] [--data-dir DIR] [--keep-versions K]
         [--skip-fetch-data] [-- MORE_PIPELINE_FLAGS...]
EOF
}

# require_value FLAG COUNT: fails unless FLAG is followed by a value.
require_value() {
  (($2 >= 2)) || die "$1 needs a value; see --help"
}

parse_flags() {
  while (($# > 0)); do
    case "$1" in
      --model-repository) require_value "$1" $#; model_repository="$2"; shift 2 ;;
      --dataset) require_value "$1" $#; dataset="$2"; shift 2 ;;
      --normal-class) require_value "$1" $#; normal_class="$2"; shift 2 ;;
      --model) require_value "$1" $#; model="$2"; shift 2 ;;
      --work-dir) require_value "$1" $#; work_dir="$2"; shift 2 ;;
      --data-dir) require_value "$1" $#; data_dir="$2"; shift 2 ;;
      --keep-versions) require_value "$1" $#; keep_versions="$2"; shift 2 ;;
      --skip-fetch-data) skip_fetch_data=true; shift ;;
      -h | --help) usage; exit 0 ;;
      --) shift; pipeline_flags=("$@"); return 0 ;;
      *) usage; die "unknown argument '$1'" ;;
    esac
  done
}

check_flags() {
  [[ -n "$model_repository" ]] || die "--model-repository is required, e.g. --model-repository /models"
  [[ -d "$model_repository" ]] || die "model repository $model_repository is not a directory; mount it first"
  [[ -w "$model_repository" ]] || die "model repository $model_repository is not writable by UID $(id -u)"
  [[ -n "$dataset" ]] || die "--dataset is required, e.g. --dataset fashion-mnist"
  [[ "$normal_class" =~ ^[0-9]+$ ]] || die "--normal-class must be a class index such as 6, got '$normal_class'"
  [[ "$keep_versions" =~ ^[0-9]+$ ]] || die "--keep-versions must be 0 or more, got '$keep_versions'"
  if [[ -z "$model" ]]; then
    model="${dataset}-class-${normal_class}"
  fi
  # The model name becomes a directory name, so it may not contain a slash or start with a dot.
  [[ "$model" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] \
    || die "model name '$model' is invalid as a directory name; pass --model with letters, digits, '.', '_' or '-'"
  if [[ -z "$data_dir" ]]; then
    data_dir="$work_dir/data"
  fi
}

remove_partial() {
  if [[ -n "$partial" && -e "$partial" ]]; then
    log "removing the incomplete copy $partial"
    rm -rf -- "$partial"
  fi
}

# publish BUNDLE MODEL_DIR VERSION: copies BUNDLE to MODEL_DIR/VERSION and points
# MODEL_DIR/current at it. Readers never see a half-copied version because the copy is renamed
# into place, and rename(2) also replaces the link in one step.
publish() {
  local bundle="$1" model_dir="$2" version="$3"
  local target="$model_dir/$version"

  mkdir -p -- "$model_dir"
  [[ ! -e "$target" ]] || die "$target already exists and versions are immutable"

  partial="$model_dir/.$version.partial"
  rm -rf -- "$partial"
  cp -R -- "$bundle" "$partial"
  sync -f "$partial"
  mv -T -- "$partial" "$target"
  partial=""
  log "published $target"

  ln -sfn -- "$version" "$model_dir/.current.partial"
  mv -T -- "$model_dir/.current.partial" "$model_dir/current"
  log "$model_dir/current now points to $version"
}

# prune MODEL_DIR KEEP: removes all but the KEEP newest versions. Version names are UTC times,
# so they sort by age, and the newest one, which `current` names, always stays.
prune() {
  local model_dir="$1" keep="$2"
  ((keep > 0)) || return 0

  local old_version
  find "$model_dir" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*T[0-9]*Z' -printf '%f\n' \
    | sort -r | tail -n +"$((keep + 1))" \
    | while IFS= read -r old_version; do
        log "removing old version $model_dir/$old_version (keeping the $keep newest)"
        rm -rf -- "${model_dir:?}/$old_version"
      done
}

main() {
  parse_flags "$@"
  check_flags
  trap remove_partial EXIT

  local version run_dir
  version="$(date -u +%Y%m%dT%H%M%SZ)"
  run_dir="$work_dir/run-$version"
  log "training model $model version $version: dataset $dataset, normal class $normal_class, run directory $run_dir"

  mkdir -p -- "$work_dir" "$data_dir"
  if [[ "$skip_fetch_data" == false ]]; then
    "$fetch_data" --data-dir "$data_dir" || die "fetching data into $data_dir failed; see the messages above"
  fi

  "$nearnd" pipeline --dataset "$dataset" --normal-class "$normal_class" --data-dir "$data_dir" \
    --out "$run_dir" --model-version "$version" "${pipeline_flags[@]}" \
    || die "nearnd pipeline failed; see the messages above, and $run_dir for the finished steps"
  [[ -f "$run_dir/bundle/manifest.json" ]] \
    || die "the pipeline finished without writing $run_dir/bundle/manifest.json"

  publish "$run_dir/bundle" "$model_repository/$model" "$version"
  prune "$model_repository/$model" "$keep_versions"
}

main "$@"
