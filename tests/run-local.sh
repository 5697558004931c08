#!/bin/sh
# `make run`: starts prakatd on conf/run.conf with everything under run/, and a small web server
# for the generated site on http://127.0.0.1:8080/.  Ctrl-C stops both.
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p run/spool/incoming run/site
cat <<MSG

  prakat is starting (Ctrl-C stops it).

  Drop an announcement here:   $top/run/spool/incoming/
      for example:  cp conf/examples/*.txt run/spool/incoming/
  The news site:               http://127.0.0.1:8080/   (files in $top/run/site/)
  Receipts:                    $top/run/spool/published/
  Problems explained:          $top/run/spool/rejected/
  What is queued:              $build/prakat --config conf/run.conf list --all
  Is it healthy:               $build/prakat --config conf/run.conf status

MSG
pids=""
trap 'kill $pids 2>/dev/null' EXIT INT TERM
if command -v python3 >/dev/null 2>&1; then
        python3 -m http.server 8080 --bind 127.0.0.1 --directory run/site >run/http.log 2>&1 &
        pids="$pids $!"
fi
# The towers: a private broker and three dry-run agents (villages 1-3), all under run/.
if command -v mosquitto >/dev/null 2>&1 && [ -x "$build/prakat-tower" ]; then
        mkdir -p run/mosquitto
        printf 'listener 18830 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/run/mosquitto/\n' \
                "$top" >run/mosquitto/mosquitto.conf
        mosquitto -c run/mosquitto/mosquitto.conf >run/mosquitto/mosquitto.log 2>&1 &
        pids="$pids $!"
        for n in 1 2 3; do
                mkdir -p run/towers/$n/state
                printf '[tower]\nvillage = %s\nbroker = mqtt://127.0.0.1:18830\ntopic_prefix = run/tower\nstate_dir = %s\n' \
                        $n "$top/run/towers/$n/state" >run/towers/$n/prakat-tower.conf
                "$build/prakat-tower" --config run/towers/$n/prakat-tower.conf --dry-run >run/towers/$n/agent.log 2>&1 &
                pids="$pids $!"
        done
        echo "  Village towers 1-3 (dry run):  tail -f run/towers/*/agent.log"
        echo
fi
"$build/prakatd" --config conf/run.conf
