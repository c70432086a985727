#!/bin/sh
# Installs an Atlas release tarball (made by `npm run release`) after checking its SHA-256 against
# the release's SHA256SUMS. POSIX sh: it runs on a bare server (dash, busybox) before Atlas does.
#
#   sh install.sh [options] atlas-<version>-linux-x64.tar.gz
#
# Always: the binary to $PREFIX/bin/atlas, README, LICENSE and docs/operating.md to
# $PREFIX/share/doc/atlas, shell completions where the release has them. Only when asked:
# --systemd (units) and --create-user (the `atlas` system user they run as). It never enables or
# starts a service: that stays the operator's decision (docs/operating.md).
set -eu

usage() {
  cat <<'EOF'
usage: sh install.sh [options] TARBALL

Checks TARBALL against SHA256SUMS (next to it unless --sums), then installs it.

  --prefix DIR     install under DIR (default: $PREFIX, else /usr/local): DIR/bin/atlas
  --sums FILE      the release's SHA256SUMS (default: the one beside TARBALL)
  --systemd        also install the systemd units (atlas-daemon, atlas-relay, atlas-bootstrap)
                   into /etc/systemd/system, pointed at DIR/bin/atlas; needs root and a running
                   systemd. Nothing is enabled or started.
  --unit-dir DIR   with --systemd: put the units in DIR instead (no root or systemd needed)
  --create-user    create the system user and group `atlas` the units run as, if missing (root)
  -h, --help       this text
EOF
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

prefix=${PREFIX:-/usr/local}
sums=
systemd=no
unit_dir=
create_user=no
tarball=
while [ $# -gt 0 ]; do
  case $1 in
    --prefix | --sums | --unit-dir)
      [ $# -ge 2 ] || die "$1 needs a value"
      case $1 in
        --prefix) prefix=$2 ;;
        --sums) sums=$2 ;;
        --unit-dir) unit_dir=$2 ;;
      esac
      shift 2
      ;;
    --systemd) systemd=yes && shift ;;
    --create-user) create_user=yes && shift ;;
    -h | --help) usage && exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      [ -z "$tarball" ] || die "one tarball at a time"
      tarball=$1 && shift
      ;;
  esac
done
[ -n "$tarball" ] || {
  usage >&2
  exit 2
}

# --- everything that can refuse does so before anything is written ---------------------------
# The prefix ends up in the units' ExecStart=: absolute, and nothing systemd would need quoted.
prefix=${prefix%/}
case $prefix in
  /*) ;;
  *) die "--prefix must be an absolute path (got '$prefix')" ;;
esac
case $prefix in
  *[!A-Za-z0-9._/-]*) die "--prefix may only contain letters, digits and . _ / - (got '$prefix')" ;;
esac
is_root=no
[ "$(id -u)" = 0 ] && is_root=yes
if [ "$systemd" = yes ]; then
  if [ -z "$unit_dir" ]; then
    unit_dir=/etc/systemd/system
    [ "$is_root" = yes ] || die "--systemd installs into $unit_dir: run as root (or pass --unit-dir DIR)"
    [ -d /run/systemd/system ] || die "systemd is not running here (no /run/systemd/system): pass --unit-dir DIR to install the units anyway"
  fi
  # The units run with ProtectHome=yes: they could not see a binary under /home or /root.
  case $prefix/ in
    /home/* | /root/*) die "--systemd with --prefix under /home or /root: the units (ProtectHome=yes) could not run $prefix/bin/atlas" ;;
  esac
elif [ -n "$unit_dir" ]; then
  die "--unit-dir goes with --systemd"
fi
[ "$create_user" = no ] || [ "$is_root" = yes ] || die "--create-user needs root"

[ -f "$tarball" ] || die "no such file: $tarball"
name=$(basename "$tarball")
case $name in
  atlas-*-linux-*.tar.gz) ;;
  *) die "$name is not named like an Atlas release (atlas-<version>-linux-<arch>.tar.gz)" ;;
esac
[ -n "$sums" ] || sums=$(dirname "$tarball")/SHA256SUMS
[ -f "$sums" ] || die "no $sums: download SHA256SUMS from the same release (or pass --sums FILE)"

# --- the checksum ------------------------------------------------------------------------------
# The line that names this file exactly ("*name" is sha256sum's binary-mode spelling).
expected=$(awk -v n="$name" '$2 == n || $2 == "*" n { print tolower($1); exit }' "$sums")
[ -n "$expected" ] || die "$sums has no line for $name"
if command -v sha256sum >/dev/null 2>&1; then
  actual=$(sha256sum <"$tarball" | cut -d ' ' -f 1)
elif command -v shasum >/dev/null 2>&1; then
  actual=$(shasum -a 256 <"$tarball" | cut -d ' ' -f 1)
else
  die "neither sha256sum nor shasum is installed: cannot check $name"
fi
[ "$actual" = "$expected" ] ||
  die "checksum mismatch for $name: SHA256SUMS says $expected, the file is $actual (a corrupt or different download); nothing was installed"
echo "checked  $name: sha256 $actual"

# --- unpack and make sure the binary runs here --------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/atlas-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
tar -xzf "$tarball" -C "$work"
src=$work/${name%.tar.gz}
[ -f "$src/atlas" ] || die "$name has no ${name%.tar.gz}/atlas"
# --version loads no native addon and writes nothing; a binary for another machine fails here,
# before it replaced a working one.
version=$(XDG_CACHE_HOME=$work/cache "$src/atlas" --version) || die "the atlas binary in $name does not run on this machine"

# --- install ------------------------------------------------------------------------------------
# Copy beside the target, then rename over it: a running atlas keeps its old file (no "text file
# busy"), and an interrupted copy never leaves half a binary at the real name.
put() { # put SRC DEST MODE
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.new.$$"
  chmod "$3" "$2.new.$$"
  mv -f "$2.new.$$" "$2"
  echo "install  $2"
}

put "$src/atlas" "$prefix/bin/atlas" 0755
for f in README.md LICENSE docs/operating.md; do
  [ ! -f "$src/$f" ] || put "$src/$f" "$prefix/share/doc/atlas/$(basename "$f")" 0644
done
# Completions, if this release has them (the usual vendor directories of each shell).
[ ! -f "$src/completions/atlas.bash" ] ||
  put "$src/completions/atlas.bash" "$prefix/share/bash-completion/completions/atlas" 0644
[ ! -f "$src/completions/_atlas" ] || put "$src/completions/_atlas" "$prefix/share/zsh/site-functions/_atlas" 0644
[ ! -f "$src/completions/atlas.fish" ] ||
  put "$src/completions/atlas.fish" "$prefix/share/fish/vendor_completions.d/atlas.fish" 0644

if [ "$create_user" = yes ]; then
  if id atlas >/dev/null 2>&1; then
    echo "user     atlas exists"
  elif command -v useradd >/dev/null 2>&1; then
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/sbin/nologin
    [ -x "$nologin" ] || nologin=/bin/false
    # No login, no home of its own: the units give each role its home under /var/lib/atlas.
    useradd --system --user-group --home-dir /var/lib/atlas --no-create-home --shell "$nologin" atlas
    echo "user     atlas created"
  else
    die "no useradd here: create a system user and group named atlas yourself"
  fi
fi

if [ "$systemd" = yes ]; then
  for u in "$src"/systemd/*.service; do
    [ -f "$u" ] || die "$name has no systemd units"
    unit=$unit_dir/$(basename "$u")
    mkdir -p "$unit_dir"
    # The units name /usr/local/bin/atlas and /usr/local/share/doc/atlas: point them at $prefix.
    sed "s#/usr/local/#$prefix/#g" "$u" >"$unit.new.$$"
    chmod 0644 "$unit.new.$$"
    mv -f "$unit.new.$$" "$unit"
    echo "install  $unit"
  done
  if [ "$unit_dir" = /etc/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
  fi
  id atlas >/dev/null 2>&1 ||
    echo "install.sh: warning: the units run as user atlas, which does not exist: run again with --create-user, or create it (useradd --system --user-group --home-dir /var/lib/atlas --no-create-home --shell /usr/sbin/nologin atlas)" >&2
  echo "next     systemctl enable --now atlas-daemon   (or atlas-relay, atlas-bootstrap; see docs/operating.md)"
fi
echo "done     $version"
