#!/usr/bin/env bash
# The image `sam local invoke` runs the functions in. Prints the `--invoke-image` arguments to
# use (nothing when SAM's own image is there):
# - if Docker has public.ecr.aws/lambda/provided:al2023 (or can pull it), SAM's own path is used;
# - otherwise (no registry, as on CI) a local stand-in is built, once: a minimal root filesystem
#   with what the `bootstrap` binaries link against (the host's glibc, libm, libgcc_s), a static
#   busybox for the shell commands SAM's image build runs, and CA certificates, imported with
#   `docker import` as ocrbridge/lambda-provided-al2023-standin:x86_64. It runs the same
#   binaries under the same emulator (SAM adds its aws-lambda-rie); it is not Amazon Linux.
set -euo pipefail
real=public.ecr.aws/lambda/provided:al2023
standin=ocrbridge/lambda-provided-al2023-standin:x86_64
if ! docker info >/dev/null 2>&1; then
  echo "lambda-image: Docker is not running (or not installed); sam local invoke needs it" >&2
  exit 1
fi
if docker image inspect "$real" >/dev/null 2>&1 || docker pull -q "$real" >/dev/null 2>&1; then
  echo "lambda-image: using $real" >&2
  exit 0
fi
if ! docker image inspect "$standin" >/dev/null 2>&1; then
  busybox=$(command -v busybox || true)
  if [ -z "$busybox" ] || ! "$busybox" --list >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; } \
        || { echo "lambda-image: apt-get could not install busybox-static" >&2; exit 1; }
      busybox=/bin/busybox
    else
      echo "lambda-image: no registry and no busybox to build a stand-in image: install busybox-static" >&2
      exit 1
    fi
  fi
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  mkdir -p "$rootfs"/{bin,lib/x86_64-linux-gnu,lib64,etc/ssl/certs,tmp,var/task,var/runtime,opt}
  cp "$busybox" "$rootfs/bin/busybox"
  for tool in sh mv chmod cp rm cat ls mkdir env; do ln -s busybox "$rootfs/bin/$tool"; done
  for lib in libc.so.6 libm.so.6 libgcc_s.so.1; do
    cp -L "/lib/x86_64-linux-gnu/$lib" "$rootfs/lib/x86_64-linux-gnu/"
  done
  cp -L /lib64/ld-linux-x86-64.so.2 "$rootfs/lib64/"
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/" 2>/dev/null || true
  echo "root:x:0:0:root:/root:/bin/sh" > "$rootfs/etc/passwd"
  echo "root:x:0:" > "$rootfs/etc/group"
  chmod 1777 "$rootfs/tmp"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change 'WORKDIR /var/task' - "$standin" >/dev/null
  echo "lambda-image: no registry: built the stand-in $standin" >&2
else
  echo "lambda-image: no registry: using the stand-in $standin" >&2
fi
echo "--invoke-image $standin --skip-pull-image"
