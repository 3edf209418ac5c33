# Debian packages of the board's architecture (ARCH: arm64, armhf) for the image, fetched
# without root: a private apt configuration (own sources list, state and cache under the
# build's cache directory, the host's Debian archive keyring), `apt-get download`, `dpkg-deb -x`. Sourced by image/build.
#
# Needs: CACHE (directory kept between builds), ARCH.

APT_DIR="$CACHE/apt/$ARCH"
DEB_DIR="$CACHE/debs"
KEYRING=${EYRIE_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
MIRROR=${EYRIE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${EYRIE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

apt_setup() {
  mkdir -p "$APT_DIR"/{lists/partial,archives/partial,etc/preferences.d,etc/apt.conf.d} "$DEB_DIR"
  [ -r "$KEYRING" ] || die "no Debian archive keyring at $KEYRING (apt-get install debian-archive-keyring)"
  cat >"$APT_DIR/sources.list" <<SRC
deb [signed-by=$KEYRING] $MIRROR bookworm main non-free-firmware
deb [signed-by=$KEYRING] $MIRROR bookworm-updates main non-free-firmware
deb [signed-by=$KEYRING] $SECURITY_MIRROR bookworm-security main non-free-firmware
SRC
  : >"$APT_DIR/status"
  APT_OPTS=(
    -o "APT::Architecture=$ARCH" -o "APT::Architectures=$ARCH"
    -o "Dir::Etc::SourceList=$APT_DIR/sources.list" -o "Dir::Etc::SourceParts=-"
    -o "Dir::Etc::Preferences=$APT_DIR/etc/preferences" -o "Dir::Etc::PreferencesParts=$APT_DIR/etc/preferences.d"
    -o "Dir::Etc::Parts=$APT_DIR/etc/apt.conf.d"
    -o "Dir::State=$APT_DIR" -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::State::status=$APT_DIR/status"
    -o "Dir::Cache=$APT_DIR" -o "Dir::Cache::archives=$APT_DIR/archives"
    -o "APT::Sandbox::User=$(id -un)" -o "Debug::NoLocking=1"
    -o "Acquire::Retries=3" -o "Acquire::http::Timeout=60"
  )
  # Indexes are refreshed at most once a day: a rebuild the same day is offline.
  local stamp="$APT_DIR/updated"
  if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
    log "apt-get update ($ARCH, bookworm + updates + security)"
    apt-get "${APT_OPTS[@]}" update -qq || die "apt-get update failed"
    touch "$stamp"
  fi
}

# The named packages and the libraries (lib*) they depend on, recursively, one per line:
# the image takes only the ELF files it needs from them, so other dependencies (adduser,
# debconf...) are not fetched.
with_libraries() {
  { printf '%s\n' "$@"
    apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances "$@" | grep -E '^lib[a-z0-9]' ; } | sort -u
}

# The .deb of each named package (the candidate version), downloaded into DEB_DIR once and
# checked against the archive's hash by apt. Prints their paths.
fetch() {
  local uris name want=() out=()
  uris=$(apt-get "${APT_OPTS[@]}" download --print-uris "$@") || die "cannot resolve $*"
  while read -r _ name _; do
    out+=("$DEB_DIR/$name")
    [ -e "$DEB_DIR/$name" ] || want+=("${name%%_*}=$(echo "${name#*_}" | sed 's/_[^_]*$//; s/%3a/:/')")
  done <<<"$uris"
  ((${#out[@]} == $#)) || die "apt-get download --print-uris named ${#out[@]} files for $# packages"
  if ((${#want[@]})); then
    log "apt-get download ${#want[@]} packages"
    (cd "$DEB_DIR" && apt-get "${APT_OPTS[@]}" download -q "${want[@]}" >/dev/null) \
      || die "apt-get download failed"
  fi
  printf '%s\n' "${out[@]}"
}

# The versioned package a metapackage (linux-image-arm64, linux-image-armmp) stands for.
kernel_package() {
  apt-cache "${APT_OPTS[@]}" depends "$1" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
