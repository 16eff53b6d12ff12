package meter

import (
	"net/http/httptest"
	"testing"
)

// recognize is Recognize for a request to target (a path with any query), with header pairs.
func recognize(t testing.TB, method, target string, header ...string) (Route, error) {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return Recognize(r)
}

// openAIInspect is what the gateway reads of a POST to path with body: the OpenAI dialect's
// Inspect for a metered endpoint, nothing for any other path.
func openAIInspect(path string, body []byte) (RequestInfo, error) {
	r := httptest.NewRequest("POST", path, nil)
	rt, err := Recognize(r)
	if err != nil {
		return RequestInfo{}, err
	}
	if rt.Kind != Metered || rt.Dialect != OpenAI {
		return RequestInfo{Endpoint: Other, Choices: 1}, nil
	}
	return OpenAI.Inspect(rt, body)
}

func openAIRewrite(body []byte, info RequestInfo, setMaxOutput int64, includeUsage bool) ([]byte, error) {
	return OpenAI.Rewrite(body, info, setMaxOutput, includeUsage)
}

func newOpenAIParser(contentType string) Parser { return OpenAI.NewParser(Route{}, contentType) }
