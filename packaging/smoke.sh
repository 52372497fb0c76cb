#!/usr/bin/env bash
# Smoke test of the frozen desktop bundle (CI-independent; tests/test_packaging.py calls it).
#
#   packaging/smoke.sh [--build] [--dist DIR] [--out PNG] [--no-xcb]
#
#   --build     (re)build the bundle with `make bundle` first (nice -n 10); without it an
#               existing dist/breast-reader is used and built only when missing.
#   --dist DIR  bundle folder (default: <repo>/dist/breast-reader)
#   --out PNG   where the demo screenshot goes (default: a temporary file)
#   --no-xcb    skip the second demo run on the X11 (xcb) platform under xvfb-run (it runs
#               only when xvfb-run is installed)
#
# Checks, each printed as "ok:" or "FAIL:" (exit status 1 on any failure):
#   1. `QT_QPA_PLATFORM=offscreen breast-reader demo --screenshot PNG` exits 0 within 300 s;
#   2. the PNG exists and is at least 1280x800 (and, with xvfb-run, the demo also runs on the
#      xcb platform plugin that desktops use);
#   3. nothing inside the bundle folder was created, deleted or modified during the runs
#      (the bundle must work installed read-only: user data goes to QStandardPaths folders);
#   4. `breast-engine --version` and `--help` work, `breast-engine info` reads every demo image
#      and `breast-engine score` runs each shipped default model (MG, US) on demo images and
#      decodes JPEG-lossless/JPEG-LS/JPEG 2000 DICOM (GDCM) to identical scores;
#   5. the bundle carries its licences, notices, models, demo study and the Qt offscreen/xcb
#      platform plugins.
# The app runs with a throw-away HOME / XDG dirs so the user's own settings are untouched.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist="$repo/dist/breast-reader"
png=""
build=0
xcb=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build) build=1 ;;
        --dist) dist="$2"; shift ;;
        --out) png="$2"; shift ;;
        --no-xcb) xcb=0 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "smoke.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

failures=0
ok() { echo "ok:   $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

if [[ $build -eq 1 || ! -x "$dist/breast-reader" ]]; then
    echo "== building the bundle (make bundle) =="
    t0=$(date +%s)
    if ! (cd "$repo" && nice -n 10 make bundle); then
        echo "FAIL: make bundle failed"; exit 1
    fi
    echo "build time: $(( $(date +%s) - t0 )) s"
fi
[[ -x "$dist/breast-reader" ]] || { echo "FAIL: no executable $dist/breast-reader"; exit 1; }
dist="$(cd "$dist" && pwd)"
echo "bundle: $dist ($(du -sh "$dist" | cut -f1))"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/br-smoke.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
[[ -n "$png" ]] || png="$tmp/demo.png"
rm -f "$png"

# Snapshot of the bundle: path, size, mtime (ns) and type of every entry.
snapshot() { (cd "$dist" && find . -printf '%p\t%s\t%T@\t%y\n' | LC_ALL=C sort); }
snapshot > "$tmp/before.txt"

# Isolated user environment; the app must create its data here, not in the bundle.
export HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/home/.config" XDG_DATA_HOME="$tmp/home/.local/share"
export XDG_CACHE_HOME="$tmp/home/.cache" XDG_RUNTIME_DIR="$tmp/runtime"
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
unset BREAST_READER_DATA BREAST_READER_RESOURCES BREAST_READER_MODELS PYTHONPATH PYTHONHOME
export QT_QPA_PLATFORM=offscreen
# Run from a scratch folder: a relative path written by mistake lands here, not in the bundle.
cd "$tmp"

# 1-2. GUI demo screenshot
t0=$(date +%s.%N)
timeout 300 "$dist/breast-reader" demo --screenshot "$png" > "$tmp/gui.log" 2>&1
rc=$?
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
if [[ $rc -eq 0 ]]; then
    ok "breast-reader demo --screenshot exited 0 in ${secs} s"
else
    fail "breast-reader demo --screenshot exited $rc after ${secs} s; log tail:"
    tail -n 30 "$tmp/gui.log" | sed 's/^/      /'
fi
if [[ -s "$png" ]] && [[ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]]; then
    read -r w h < <(od -An -tu1 -j16 -N8 "$png" | awk '{print $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8}')
    if (( w >= 1280 && h >= 800 )); then
        ok "screenshot $png is ${w}x${h} (>= 1280x800)"
    else
        fail "screenshot $png is ${w}x${h}, smaller than 1280x800"
    fi
else
    fail "no PNG screenshot at $png"
fi

# 1b. the same demo on the desktop platform plugin (X11/xcb) inside a virtual X server
if [[ $xcb -eq 1 ]] && command -v xvfb-run > /dev/null; then
    if QT_QPA_PLATFORM=xcb timeout 300 xvfb-run -a -s "-screen 0 1920x1200x24" \
        "$dist/breast-reader" demo --screenshot "$tmp/xcb.png" > "$tmp/xcb.log" 2>&1 && [[ -s "$tmp/xcb.png" ]]; then
        ok "demo also runs on the xcb (X11) platform under xvfb-run"
    else
        fail "demo on the xcb platform under xvfb-run failed:"; tail -n 15 "$tmp/xcb.log" | sed 's/^/      /'
    fi
fi

# 4. headless CLI from the same folder
if [[ -x "$dist/breast-engine" ]]; then
    if v="$("$dist/breast-engine" --version 2>&1)"; then ok "breast-engine --version: $v"; else fail "breast-engine --version: $v"; fi
    if "$dist/breast-engine" --help > "$tmp/cli.log" 2>&1; then
        ok "breast-engine --help lists: $(awk '/^    [a-z][a-z-]+ /{printf "%s ", $1}' "$tmp/cli.log")"
    else
        fail "breast-engine --help failed:"; tail -n 20 "$tmp/cli.log" | sed 's/^/      /'
    fi
else
    fail "no breast-engine executable in the bundle"
fi

# 4b. the frozen engine reads every demo image (pydicom, RLE/GDCM decoders, OpenCV/Pillow)
demo="$dist/_internal/resources/demo"
if [[ -d "$demo" ]]; then
    mapfile -t images < <(find "$demo" -type f \( -name '*.dcm' -o -name '*.png' \) | sort)
    if "$dist/breast-engine" info "${images[@]}" > "$tmp/info.log" 2>&1 && ! grep -q ERROR "$tmp/info.log"; then
        ok "breast-engine info read all ${#images[@]} demo images"
    else
        fail "breast-engine info failed on demo images:"; grep -E 'ERROR|error' "$tmp/info.log" | head -n 10 | sed 's/^/      /'
    fi
    # 4c. frozen inference with each shipped default model on matching demo images
    defaults="$dist/_internal/resources/models/defaults.json"
    for mod in MG US; do
        grep -q "\"$mod\"[[:space:]]*:" "$defaults" 2>/dev/null || continue
        if [[ $mod == MG ]]; then pat='mdb*'; else pat='[bm][ea][nl]i*'; fi
        mapfile -t inputs < <(find "$demo/cases" -maxdepth 2 -type f -name "$pat" \( -name '*.dcm' -o -name '*.png' \) | sort | head -n 3)
        [[ ${#inputs[@]} -gt 0 ]] || { fail "no $mod demo image to score"; continue; }
        # The MG default scores the region inside a reader's box: give it one via a manifest
        # (the US default reads whole images).
        if [[ $mod == MG ]]; then
            { echo "path,modality,x0,y0,x1,y1"; for f in "${inputs[@]}"; do echo "$f,MG,400,400,600,600"; done; } > "$tmp/mg.csv"
            args=(--manifest "$tmp/mg.csv")
        else
            args=(--modality "$mod" "${inputs[@]}")
        fi
        if "$dist/breast-engine" score --out "$tmp/score_$mod.csv" "${args[@]}" > "$tmp/score.log" 2>&1 \
            && awk -F, '{ sub(/\r$/, "") } NR>1 { n++; if ($NF !~ /^[0-9.eE-]+$/ || $NF < 0 || $NF > 1) bad++ } END { exit (n == 0 || bad > 0) }' "$tmp/score_$mod.csv"; then
            ok "breast-engine score ($mod default model): $(tail -n +2 "$tmp/score_$mod.csv" | tr -d '\r' | awk -F, '{printf "%s ", $NF}')"
        else
            fail "breast-engine score --modality $mod failed:"; tail -n 10 "$tmp/score.log" | sed 's/^/      /'
        fi
    done
fi

# 4d. GDCM codecs frozen: the same image stored JPEG-lossless / JPEG-LS / JPEG 2000 decodes
#     to identical pixels, hence one identical score (packaging/testdata/make_codec_samples.py)
mapfile -t codecs < <(find "$repo/packaging/testdata" -name '*.dcm' | sort)
if [[ ${#codecs[@]} -gt 0 ]]; then
    { echo "path,modality,x0,y0,x1,y1"; for f in "${codecs[@]}"; do echo "$f,MG,8,8,40,56"; done; } > "$tmp/codecs_manifest.csv"
    if "$dist/breast-engine" score --manifest "$tmp/codecs_manifest.csv" --out "$tmp/codecs.csv" > "$tmp/codecs.log" 2>&1; then
        distinct="$(tail -n +2 "$tmp/codecs.csv" | tr -d '\r' | awk -F, '{print $NF}' | sort -u | wc -l)"
        if [[ "$distinct" == 1 ]]; then
            ok "GDCM decodes JPEG-lossless, JPEG-LS and JPEG 2000 identically (${#codecs[@]} files, one score)"
        else
            fail "compressed copies of one image score differently: $(tail -n +2 "$tmp/codecs.csv" | tr -d '\r' | tr '\n' ' ')"
        fi
    else
        fail "breast-engine could not decode the compressed DICOM samples:"; tail -n 10 "$tmp/codecs.log" | sed 's/^/      /'
    fi
fi

# 3. nothing written inside the bundle
snapshot > "$tmp/after.txt"
if cmp -s "$tmp/before.txt" "$tmp/after.txt"; then
    ok "bundle folder unchanged by the runs ($(wc -l < "$tmp/after.txt") entries compared)"
else
    fail "the runs wrote inside the bundle:"
    diff "$tmp/before.txt" "$tmp/after.txt" | grep '^[<>]' | head -n 20 | sed 's/^/      /'
fi
if [[ -d "$HOME" ]] && [[ -n "$(find "$HOME" -type f 2>/dev/null | head -1)" ]]; then
    ok "user files went to the per-user folders ($(cd "$HOME" && find . -type f | wc -l) files), e.g. $(cd "$HOME" && find . -type f | head -n 3 | tr '\n' ' ')"
fi
conf="$(find "$XDG_CONFIG_HOME" -name '*.conf' -o -name '*.ini' 2>/dev/null | head -1)"
if [[ -n "$conf" ]]; then
    ok "settings persist in the user's config folder: ${conf#"$tmp"/}"
else
    echo "note: no settings file was written under \$XDG_CONFIG_HOME during the demo"
fi

# 5. contents
internal="$dist/_internal"
for f in THIRD_PARTY_NOTICES.txt LICENSES/mini-MIAS-Licence.txt LICENSES/BUSI-CC-BY-4.0.txt \
         _internal/resources/models/defaults.json _internal/resources/demo/study.json \
         _internal/resources/icons/breast-reader.svg _internal/resources/breast-reader.desktop; do
    if [[ -s "$dist/$f" ]]; then ok "contains $f"; else fail "missing $f"; fi
done
for plugin in offscreen xcb; do
    if [[ -n "$(find "$internal" -path '*platforms*' -name "libq${plugin}.so" -print -quit)" ]]; then
        ok "Qt platform plugin $plugin present"
    else
        fail "Qt platform plugin $plugin missing"
    fi
done
if [[ -n "$(find "$internal" -name 'efficientnet-lite0-*.pth' -print -quit)" ]]; then
    ok "EfficientNet-Lite0 ImageNet weights present"
else
    fail "EfficientNet-Lite0 ImageNet weights missing"
fi

if [[ $failures -eq 0 ]]; then
    echo "SMOKE PASSED"
    exit 0
fi
echo "SMOKE FAILED ($failures checks)"
exit 1
