#!/usr/bin/env bash
# The crashing child of the respawn case (bench/supervise/compare.sh).
#
#   crash.sh RECORD ID SLOTS PERIOD_US MIN_RUN_US
#
# On start it appends "S ID <µs since the epoch>" to RECORD; it then sleeps until its
# exit slot, appends "E ID <µs>" and exits with code 1. Exit slots are fixed points of
# wall-clock time: slot ID mod SLOTS of every PERIOD_US, the first one at least
# MIN_RUN_US after the start. So every run lasts at least MIN_RUN_US (berth's backoff
# resets after a 10 s run), and the crashes of different IDs never come close together
# (each supervisor sees one crash at a time).
#
# Timestamps come from bash's $EPOCHREALTIME: no fork between the exit stamp and the
# exit, and none before the start stamp; what a start stamp does include is the exec of
# this script and bash's own start-up, the same for every supervisor.
LC_ALL=C
rec=$1 id=$2 slots=$3 period=$4 min_run=$5
now=${EPOCHREALTIME/[.,]/}
echo "S $id $now" >>"$rec"
slot=$(( (id % slots) * period / slots ))
earliest=$(( now + min_run ))
at=$(( earliest + ((slot - earliest % period) % period + period) % period ))
left=$(( at - now ))
sleep "$(( left / 1000000 )).$(printf '%06d' $(( left % 1000000 )))"
echo "E $id ${EPOCHREALTIME/[.,]/}" >>"$rec"
exit 1
