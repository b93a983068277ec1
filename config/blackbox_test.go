package config

import (
	"testing"
)

// blackbox_exporter's own example.yml and blackbox.yml load unchanged
// (copies in testdata/blackbox; see its README for their origin).
func TestBlackboxConfigsLoad(t *testing.T) {
	for _, name := range []string{"example.yml", "blackbox.yml"} {
		t.Run(name, func(t *testing.T) {
			c, err := LoadFile("testdata/blackbox/" + name)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Modules) < 10 {
				t.Errorf("%d modules loaded", len(c.Modules))
			}
		})
	}
	c, err := LoadFile("testdata/blackbox/example.yml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Modules["http_2xx_oauth_client_credentials"].HTTP.ValidHTTPVersions; len(got) != 2 || got[1] != "HTTP/2.0" {
		t.Errorf("valid_http_versions = %q, want HTTP/2 read as HTTP/2.0", got)
	}
	u := c.Modules["unix_socket_ping"]
	if u.Prober != "unix" || len(u.Unix.QueryResponse) != 2 || u.Unix.QueryResponse[0].Send != "PING" || u.Unix.QueryResponse[1].Expect.String() != "PONG" {
		t.Errorf("unix_socket_ping = %+v", u)
	}
	if got := c.Modules["postgresql"].TCP.QueryResponse[0].Send; got != "\x00\x00\x00\x08\x04\xd2\x16\x2f" {
		t.Errorf("postgresql's binary send = %q", got)
	}
}

// blackbox_exporter's own test of the websocket section's schema.
func TestWebsocketSectionAsBlackbox(t *testing.T) {
	c, err := Parse([]byte(`
modules:
  websocket_test:
    prober: websocket
    websocket:
      http_config:
        tls_config:
          insecure_skip_verify: true
        basic_auth:
          username: myuser
          password: mypassword
`), "websocket.yml")
	if err != nil {
		t.Fatal(err)
	}
	hc := c.Modules["websocket_test"].Websocket.HTTPClientConfig
	if !hc.TLSConfig.InsecureSkipVerify || hc.BasicAuth == nil || hc.BasicAuth.Username != "myuser" || hc.BasicAuth.Password != "mypassword" {
		t.Errorf("http_config = %+v", hc)
	}
}
