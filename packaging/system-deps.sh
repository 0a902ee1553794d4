#!/usr/bin/env sh
# System libraries Qt needs, from Debian packages: `offscreen` for the headless
# tests, `gui` for a real window on X11 (the xcb platform plugin). The tests
# (`offscreen`) also want PostgreSQL's server programs: the search test starts a
# throwaway server of its own (no service), and is skipped without them.
# Installs what is missing when run as root with apt-get; otherwise says what to install.
set -eu
kind=${1:-offscreen}
offscreen="libEGL.so.1:libegl1 libGL.so.1:libgl1 libfontconfig.so.1:libfontconfig1 \
libxkbcommon.so.0:libxkbcommon0 libdbus-1.so.3:libdbus-1-3 libglib-2.0.so.0:libglib2.0-0"
gui="libxcb-cursor.so.0:libxcb-cursor0 libxkbcommon-x11.so.0:libxkbcommon-x11-0 \
libxcb-icccm.so.4:libxcb-icccm4 libxcb-keysyms.so.1:libxcb-keysyms1 \
libxcb-shape.so.0:libxcb-shape0 libxcb-render-util.so.0:libxcb-render-util0 \
libxcb-image.so.0:libxcb-image0 libxcb-randr.so.0:libxcb-randr0 libxcb-xinerama.so.0:libxcb-xinerama0"
wanted=$offscreen
[ "$kind" = gui ] && wanted="$offscreen $gui"
missing=""
for pair in $wanted; do
  lib=${pair%%:*}; pkg=${pair##*:}
  ldconfig -p 2>/dev/null | grep -q "$lib" || missing="$missing $pkg"
done
postgres=""
if [ "$kind" = offscreen ] && ! command -v initdb >/dev/null 2>&1 \
    && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  postgres="postgresql"
fi
[ -z "$missing$postgres" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages:$missing $postgres"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing $postgres \
    >/dev/null
elif [ -z "$missing" ]; then
  echo "the PostgreSQL search test is skipped without: sudo apt-get install postgresql" >&2
else
  echo "Qt needs these system packages (Debian/Ubuntu names):$missing" >&2
  echo "install them with: sudo apt-get install$missing" >&2
  [ "$kind" = gui ] && exit 0 || exit 1
fi
