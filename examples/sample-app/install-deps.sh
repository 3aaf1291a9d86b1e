#!/bin/sh
# The sample app's dependency step, offline: like `npm ci`, it first removes
# what was installed, then "installs" requirements.txt into vendor/. A line
# `fail` in requirements.txt makes it fail half-way, as a broken install would.
set -e
rm -rf vendor
mkdir -p vendor
if grep -qx fail requirements.txt; then
  echo "install-deps: cannot install 'fail'" >&2
  exit 1
fi
cp requirements.txt vendor/installed.txt
n=$(wc -l < requirements.txt | tr -d ' ')
[ "$n" = 1 ] && noun=requirement || noun=requirements
echo "install-deps: installed $n $noun"
