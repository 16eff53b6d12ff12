// Command caddy is Caddy with the standard modules and the behest plugin, for the quick start
// and the end-to-end tests. Production builds use xcaddy (see the README).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/behest/caddy-behest"
)

func main() {
	caddycmd.Main()
}
