#!/usr/bin/env bash
# `haproxy` for the load-balanced replicas test (tests/ops/test_load_balanced_replicas.py), from
# Debian (scripts/apt_package.sh).
exec bash "$(dirname "$0")/apt_package.sh" haproxy haproxy "the load-balancer test"
