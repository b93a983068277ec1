package api

import "testing"

func TestDigestIgnoresOrder(t *testing.T) {
	keys := []TargetKey{{"https://a.example", "http_2xx"}, {"https://b.example", "http_2xx"}, {"a.example:443", "tcp_connect"}}
	var fwd, back Digest
	for i := range keys {
		fwd.Add(keys[i])
		back.Add(keys[len(keys)-1-i])
	}
	if fwd.String() != back.String() {
		t.Errorf("digest depends on order: %s vs %s", fwd, back)
	}
	var fewer Digest
	fewer.Add(keys[0])
	fewer.Add(keys[1])
	if fewer.String() == fwd.String() {
		t.Errorf("digest of two targets equals that of three: %s", fewer)
	}
	var swapped Digest
	swapped.Add(TargetKey{"http_2xx", "https://a.example"}) // target and module swapped
	var one Digest
	one.Add(keys[0])
	if swapped.String() == one.String() {
		t.Errorf("digest ignores which field is the module")
	}
	if (Digest{}).String() != "0-0000000000000000" {
		t.Errorf("empty digest = %s", Digest{})
	}
}
