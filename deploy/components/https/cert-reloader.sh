#!/bin/sh
# The cert-reloader container: when the kubelet swaps the Secret's files (it points the ..data symlink at a new
# timestamped directory), send nginx's master SIGHUP. nginx then reads its configuration and certificate again,
# starts new workers and lets the old ones finish their connections: no request is dropped. A certificate that
# nginx cannot load leaves the old configuration serving (nginx logs why).
# TLS_DIR, PID_FILE and INTERVAL (seconds) default to the DaemonSet's paths; CI runs this very file against a
# real nginx with its own.
set -u
tls_dir=${TLS_DIR:-/etc/nginx/tls}
pid_file=${PID_FILE:-/tmp/nginx.pid}
interval=${INTERVAL:-10}
beat=${BEAT_FILE:-/tmp/cert-reloader.beat}
last=$(readlink "$tls_dir/..data" 2>/dev/null || echo none)
echo "cert-reloader: watching $tls_dir (now $last), every ${interval}s"
while :; do
  touch "$beat"  # the probes check that this loop is alive
  sleep "$interval"
  now=$(readlink "$tls_dir/..data" 2>/dev/null || echo none)
  [ "$now" = "$last" ] && continue
  if [ -s "$pid_file" ] && kill -HUP "$(cat "$pid_file")"; then
    echo "cert-reloader: the certificate changed ($last -> $now): nginx reloads it"
    last=$now
  else
    echo "cert-reloader: the certificate changed, but nginx is not running yet; trying again"
  fi
done
