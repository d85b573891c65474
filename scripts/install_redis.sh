#!/usr/bin/env bash
# `redis-server` for the store tests (tests/store), from Debian (scripts/apt_package.sh).
exec bash "$(dirname "$0")/apt_package.sh" redis-server redis-server "the Redis store tests"
