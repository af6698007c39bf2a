#!/usr/bin/env bash
# The console's front-end packages (services/console/frontend/package.json, exact versions,
# package-lock.json with integrity hashes) copied into services/console/static/vendor, which is
# committed: a machine with only Python runs the console, and nothing is fetched at run time.
set -euo pipefail
cd "$(dirname "$0")/../services/console/frontend"
npm ci --silent --no-audit --no-fund
out=../static/vendor
rm -rf "$out" && mkdir -p "$out"
cp node_modules/htmx.org/dist/htmx.min.js "$out/htmx.min.js"
cp node_modules/echarts/dist/echarts.min.js "$out/echarts.min.js"
cp node_modules/htmx-ext-sse/dist/sse.min.js "$out/htmx-ext-sse.min.js"   # the broker's live inbox
cp node_modules/axe-core/axe.min.js "$out/axe.min.js"   # tests inject it; pages never load it
for pkg in htmx.org htmx-ext-sse echarts axe-core; do
  node -e "const p=require('./node_modules/$pkg/package.json');console.log(p.name+' '+p.version+' '+(p.license||'(licence in its LICENSE file)'))"
done > "$out/VERSIONS"
cat "$out/VERSIONS"
