#!/bin/bash
# The legacy `monitor-bot` dashboard, re-created for benchmarking from the
# operations guide: the same checks, in the same one-command-per-fact style.
# The bench host runs the sample app under the process back end, so "the
# service" is found with pgrep as the legacy health check did.
PORT=${PORT:-3003}
APP=${APP:-$HOME/app}
TEMP=${TEMP_DIR:-/tmp/voice-meeting-bot/temp}
UPDATE_LOG=${UPDATE_LOG:-/var/log/voice-meeting-bot-update.log}
echo "=== Discord Bot Monitor $(date '+%Y-%m-%d %H:%M:%S') ==="
PID=$(pgrep -f "python3 app.py" | head -n 1)
if [ -n "$PID" ]; then
  echo "Service: RUNNING (PID $PID)"
  ps -p "$PID" -o %cpu=,%mem= | awk '{print "CPU: "$1"%  MEM: "$2"%"}'
else
  echo "Service: STOPPED"
fi
if ss -tln | grep -q ":$PORT "; then echo "Port $PORT: LISTENING"; else echo "Port $PORT: CLOSED"; fi
CODE=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"test":"health"}' "http://127.0.0.1:$PORT/webhook/meeting-completed")
echo "Webhook: HTTP $CODE"
API=$(grep '^PYTHON_API_URL=' "$APP/.env" 2>/dev/null | cut -d= -f2)
if [ -n "$API" ]; then echo "Python API: HTTP $(curl -s -o /dev/null -w '%{http_code}' "$API/health")"; else echo "Python API: not configured"; fi
if [ -d "$TEMP" ]; then
  echo "Temp dir: $(du -sh "$TEMP" | cut -f1), $(find "$TEMP" -name '*.pcm' | wc -l) pcm files, $(find "$TEMP" -name '*.pcm' -mtime -1 | wc -l) in 24h"
else
  echo "Temp dir: missing"
fi
echo "Journal: $(journalctl --disk-usage 2>/dev/null | awk '{print $(NF-3)}')"
DISK=$(df / | awk 'NR==2 {print $5}' | tr -d '%')
echo "Disk: ${DISK}%"; [ "$DISK" -gt 80 ] && echo "WARNING: disk over 80%"
echo "Errors (1h): $(journalctl --since '1 hour ago' 2>/dev/null | grep -ci error)"
echo "Last update check: $(tail -n 1 "$UPDATE_LOG" 2>/dev/null || echo never)"
echo "Memory: $(free | awk '/Mem:/ {printf "%.1f%%", $3/$2*100}')"
echo "Load: $(cut -d' ' -f1-3 /proc/loadavg)"
