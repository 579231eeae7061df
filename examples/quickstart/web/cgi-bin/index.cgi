#!/bin/sh
# The web front: asks the API, by service name, for the visit count.
printf 'Content-Type: text/plain\r\n\r\n'
printf 'hello from web; api says: %s\n' "$(wget -qO- http://api:9000/cgi-bin/count)"
