#!/usr/bin/env bash
# Re-record tuning_loop.txt: the prompt-tuning loop typed into a real terminal (tmux, 100x60),
# each command sent once the previous one has printed its prompt. Needs tmux and the
# project installed in the active environment. test_golden_transcript.py replays the
# same commands on a pseudo-terminal and compares.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
cp "$here/pipeline.toml" "$work/"
bin="$(dirname "$(command -v msgflux-store)")"
tmux kill-session -t msgflux-golden 2>/dev/null || true
tmux new-session -d -s msgflux-golden -x 100 -y 60 \
    "env -i PATH=$bin:/usr/bin:/bin HOME=$HOME TERM=xterm-256color LANG=C.UTF-8 bash --norc --noprofile"
sleep 1
tmux send-keys -t msgflux-golden "cd $work; export PS1='\$ '; clear" Enter
sleep 1
grep '^\$ ' "$here/tuning_loop.txt" | sed 's/^\$ //' | while IFS= read -r line; do
    [ -z "$line" ] && continue
    tmux send-keys -t msgflux-golden -l "$line"
    tmux send-keys -t msgflux-golden Enter
    for _ in $(seq 120); do
        sleep 0.5
        [ "$(tmux capture-pane -p -t msgflux-golden | grep -v '^$' | tail -1)" = '$' ] && break
    done
done
tmux capture-pane -p -J -S - -t msgflux-golden | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' \
    | sed '$ s/ $//' > "$here/tuning_loop.txt"
tmux kill-session -t msgflux-golden
rm -rf "$work"
