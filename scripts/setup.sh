#!/usr/bin/env bash
# Installs what the local stack and the tests need, idempotently:
#   - .venv (moto server, cfn-lint), .venv-sam (aws-sam-cli: sam validate, the Lambda Runtime
#     Interface Emulator) and .venv-checkov (checkov), each pinned in tools/python/
#   - Debian packages for the vendor simulator's OCR engine (tesseract-ocr, tesseract-ocr-eng,
#     poppler-utils), for generating test documents (qpdf) and for opening the quality report in
#     a real headless browser (chromium), and for driving the review console in it over
#     WebDriver (chromium-driver's chromedriver): installed with apt when root,
#     otherwise checked, with the command to run if missing.
# Fails with a clear message when something cannot be installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

die() { echo "setup: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is not on PATH; install Rust (https://rustup.rs) first"
python=${PYTHON:-python3}
command -v "$python" >/dev/null || die "$python is not on PATH; install Python 3.9+ (Debian: apt-get install python3 python3-venv)"

# venv directory -> pinned requirements. Three venvs because the tools pin conflicting versions
# of the same libraries (pip refuses to resolve moto + aws-sam-cli + checkov together).
install_venv() {
  local venv=$1 requirements=$2
  local stamp="$venv/.requirements.sha256"
  local want
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" || { echo "setup: could not create $venv (Debian: apt-get install python3-venv)" >&2; return 1; }
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing $requirements into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" \
      || { echo "setup: pip could not install $requirements (is PyPI reachable?)" >&2; return 1; }
    echo "$want" >"$stamp"
  fi
}
install_venv .venv tools/python/requirements.txt &
p1=$!
install_venv .venv-sam tools/python/requirements-sam.txt &
p2=$!
install_venv .venv-checkov tools/python/requirements-checkov.txt &
p3=$!
wait $p1 && wait $p2 && wait $p3 || die "a Python tool could not be installed (see above)"

# tool -> Debian package that provides it
declare -A packages=(
  [tesseract]=tesseract-ocr
  [pdftoppm]=poppler-utils
  [pdftotext]=poppler-utils
  [qpdf]=qpdf
  [chromium]=chromium
  [chromedriver]=chromium-driver
)
missing=()
for tool in "${!packages[@]}"; do
  command -v "$tool" >/dev/null || missing+=("${packages[$tool]}")
done
if command -v tesseract >/dev/null && ! tesseract --list-langs 2>/dev/null | grep -qx eng; then
  missing+=(tesseract-ocr-eng)
fi
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" tesseract-ocr-eng | sort -u)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: apt-get install ${missing[*]}"
    apt-get update -qq || die "apt-get update failed (is the Debian mirror reachable?)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || die "apt-get could not install ${missing[*]}"
  else
    die "missing ${missing[*]}; install them with: sudo apt-get install ${missing[*]}"
  fi
fi

echo "setup: ok (venv: $(.venv/bin/python --version), moto $(.venv/bin/python -c 'import moto; print(moto.__version__)'), $(tesseract --version 2>/dev/null | head -1))"
