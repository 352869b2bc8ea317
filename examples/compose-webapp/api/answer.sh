#!/bin/sh
# One answer per connection: the greeting, the request line, and how many requests so far.
read -r request
count=$(( $(cat /tmp/count 2>/dev/null || echo 0) + 1 ))
echo "$count" > /tmp/count
echo "$GREETING (request $count, you sent: $request)"
