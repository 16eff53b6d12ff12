package meter

import "strings"

// CheckPath refuses a model request's path that the gateway and the provider could read two
// ways, so that the endpoint metered is the endpoint the provider serves. escaped is the path as
// it goes upstream (url.URL.EscapedPath). Refused, with a *RequestError:
//
//   - percent-encoding of any byte: model APIs never need it, and a provider that decodes %2F
//     or %23 routes elsewhere than the gateway meters;
//   - empty segments (//), dot segments (. and ..) and a trailing slash, which servers clean
//     up differently or not at all;
//   - a backslash or a semicolon, which some servers read as a separator or a parameter.
//
// The case of the path is checked where the endpoint is recognised (see EndpointOf).
func CheckPath(escaped string) error {
	if !strings.HasPrefix(escaped, "/") {
		return pathError("it must start with /")
	}
	if i := strings.IndexAny(escaped, `%\;`); i >= 0 {
		return pathError("it has " + quoteByte(escaped[i]) + "; send the path unencoded, as the SDKs do")
	}
	if escaped == "/" {
		return nil
	}
	if strings.HasSuffix(escaped, "/") {
		return pathError("it ends in /")
	}
	for seg := range strings.SplitSeq(escaped[1:], "/") {
		switch seg {
		case "":
			return pathError("it has an empty segment (//)")
		case ".", "..":
			return pathError("it has a " + seg + " segment")
		}
	}
	return nil
}

func pathError(why string) error {
	return &RequestError{Message: "The request path is not in canonical form: " + why + "."}
}

func quoteByte(c byte) string {
	switch c {
	case '%':
		return "percent-encoding (%)"
	case '\\':
		return `a backslash (\)`
	}
	return "a semicolon (;)"
}
