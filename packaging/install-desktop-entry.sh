#!/usr/bin/env bash
# Install a menu entry and icons for an unpacked breast-reader bundle, for the current user
# (no root needed): ~/.local/share/applications and the hicolor icon theme.
#   packaging/install-desktop-entry.sh [BUNDLE_DIR]      (default: dist/breast-reader)
# The bundle itself is never modified; remove the entry with --uninstall.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
apps="$data/applications"
icons="$data/icons/hicolor"

if [[ "${1:-}" == "--uninstall" ]]; then
    rm -f "$apps/breast-reader.desktop"
    find "$icons" -name 'breast-reader.png' -path '*/apps/*' -delete 2>/dev/null || true
    rm -f "$icons/scalable/apps/breast-reader.svg"
    echo "removed the breast-reader menu entry and icons"
    exit 0
fi

bundle="$(cd "${1:-$here/dist/breast-reader}" && pwd)"
exe="$bundle/breast-reader"
[[ -x "$exe" ]] || { echo "install-desktop-entry: no executable $exe" >&2; exit 1; }
# The bundle carries its resources under _internal/ (PyInstaller >= 6 one-folder layout).
res="$bundle/_internal/resources"
[[ -d "$res" ]] || res="$here/resources"

mkdir -p "$apps" "$icons/scalable/apps"
for png in "$res"/icons/png/breast-reader-*.png; do
    size="$(basename "$png" .png)"; size="${size##*-}"
    mkdir -p "$icons/${size}x${size}/apps"
    cp "$png" "$icons/${size}x${size}/apps/breast-reader.png"
done
cp "$res/icons/breast-reader.svg" "$icons/scalable/apps/breast-reader.svg"
# Point Exec/TryExec at the bundle (the shipped entry assumes breast-reader on PATH).
sed -e "s|^Exec=.*|Exec=\"$exe\" %F|" -e "s|^TryExec=.*|TryExec=$exe|" \
    "$res/breast-reader.desktop" > "$apps/breast-reader.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$apps" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$icons" || true
echo "installed $apps/breast-reader.desktop -> $exe"
