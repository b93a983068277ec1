package jsonapi

import (
	"net/http/httptest"
	"testing"
)

// A list written one element at a time is the same answer as the whole
// slice written at once.
func TestListWritesWhatWriteWrites(t *testing.T) {
	type item struct {
		Name string            `json:"name"`
		Tags map[string]string `json:"tags,omitempty"`
	}
	for _, items := range [][]item{
		{},
		{{Name: "a"}},
		{{Name: "<b> & c"}, {Name: "d", Tags: map[string]string{"z": "1", "a": "\u2028"}}, {Name: ""}},
	} {
		whole := httptest.NewRecorder()
		Write(whole, 200, items)
		each := httptest.NewRecorder()
		l := StartList(each, 200)
		for i := range items {
			if err := l.Add(&items[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.End(); err != nil {
			t.Fatal(err)
		}
		if each.Body.String() != whole.Body.String() || each.Header().Get("Content-Type") != "application/json" || each.Code != 200 {
			t.Errorf("List wrote %d %q (%s), Write %d %q", each.Code, each.Body.String(), each.Header().Get("Content-Type"), whole.Code, whole.Body.String())
		}
	}
}
