#!/bin/sh
# Install PeakOps from this tarball (for systems without dpkg; on Debian/Ubuntu prefer the .deb).
#
#   ./install.sh                 as root: /opt/peakops, /usr/local/bin/peakops, system-wide
#                                as a user: ~/.local/opt/peakops, ~/.local/bin/peakops
#   ./install.sh --prefix DIR    app in DIR/opt/peakops, command in DIR/bin
#   ./install.sh --uninstall     remove what this script installed (same prefix rules)
#
# Installs the app folder, the `peakops` command, a desktop entry with its icon and a
# systemd user unit (systemctl --user enable --now peakops), then checks the system
# libraries and fonts the console needs and runs `peakops --self-test`.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = "0" ]; then
    prefix=/usr/local; app_dir=/opt/peakops; share=/usr/local/share; units=/etc/systemd/user
else
    prefix=$HOME/.local; app_dir=$HOME/.local/opt/peakops
    share=${XDG_DATA_HOME:-$HOME/.local/share}; units=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
fi
action=install
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) prefix=$2; app_dir=$2/opt/peakops; share=$2/share; units=$2/lib/systemd/user; shift 2 ;;
        --uninstall) action=uninstall; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
bin=$prefix/bin/peakops

if [ "$action" = uninstall ]; then
    rm -rf "$app_dir"
    rm -f "$bin" "$share/applications/peakops.desktop" \
          "$share/icons/hicolor/256x256/apps/peakops.png" "$units/peakops.service"
    echo "removed PeakOps from $app_dir (your data in ~/.local/share/peakops is kept)"
    exit 0
fi

echo "installing PeakOps $(cat "$here/VERSION") into $app_dir"
mkdir -p "$(dirname "$app_dir")" "$prefix/bin" "$share/applications" \
         "$share/icons/hicolor/256x256/apps" "$units"
rm -rf "$app_dir.new"
cp -a "$here/peakops" "$app_dir.new"
rm -rf "$app_dir"
mv "$app_dir.new" "$app_dir"
ln -sfn "$app_dir/peakops" "$bin"
sed "s|@BIN@|$bin|g" "$here/share/peakops.desktop" > "$share/applications/peakops.desktop"
cp "$here/share/peakops.png" "$share/icons/hicolor/256x256/apps/peakops.png"
sed "s|@BIN@|$bin|g" "$here/share/peakops.service" > "$units/peakops.service"

# The console needs the system's X11/xcb, GL, fontconfig and D-Bus libraries.
missing=$(find "$app_dir/_internal" -name '*.so*' -type f -exec ldd {} + 2>/dev/null \
          | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
if [ -n "$missing" ]; then
    echo "warning: system libraries missing (the console will not start): $missing" >&2
    echo "  on Debian/Ubuntu they are in: $(for s in $missing; do
        awk -v s="$s" '$1 == s {print $2}' "$app_dir/_internal/peakops-system-libs.txt"
        done | sort -u | tr '\n' ' ')" >&2
fi
if command -v fc-list >/dev/null 2>&1 && [ -z "$(fc-list | head -n 1)" ]; then
    echo "warning: no fonts installed; the console needs one (e.g. DejaVu Sans)" >&2
fi
"$app_dir/peakops" --self-test || echo "warning: the self-test failed (see above)" >&2
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "note: add $prefix/bin to your PATH" ;;
esac
echo "done: run \`peakops console\`, or start the service: systemctl --user enable --now peakops"
