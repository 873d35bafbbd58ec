package site

// The names and paths a site file may hold are checked by hand, not with
// regular expressions: compiling those took a tenth of every sitectl
// command's start (some 2,300 allocations at init), and matching them a
// share of parsing 10,000 site files. Each function below says the
// expression it stands for; charset_test.go checks them against it.

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// span says whether s has between min and max bytes (max < 0: no bound),
// its first in first and the rest in rest.
func span(s string, min, max int, first, rest func(byte) bool) bool {
	if len(s) < min || max >= 0 && len(s) > max || len(s) == 0 || !first(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !rest(s[i]) {
			return false
		}
	}
	return true
}

// validName: ^[a-z][a-z0-9]*(-[a-z0-9]+)*$
func validName(s string) bool {
	if s == "" || !isLower(s[0]) || s[len(s)-1] == '-' {
		return false
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case isLower(c) || isDigit(c):
		case c == '-' && s[i-1] != '-':
		default:
			return false
		}
	}
	return true
}

// validPath is what sitectl accepts in a path: it ends up in unit files,
// where spaces separate list items and % and $ are specifiers.
// ^/[A-Za-z0-9._/@+:,=~-]*$
func validPath(s string) bool {
	return span(s, 1, -1, func(c byte) bool { return c == '/' }, func(c byte) bool {
		switch c {
		case '.', '_', '/', '@', '+', ':', ',', '=', '~', '-':
			return true
		}
		return isLower(c) || isUpper(c) || isDigit(c)
	})
}

// validAccount: ^[a-z_][a-z0-9_-]{0,30}$
func validAccount(s string) bool {
	return span(s, 1, 31, func(c byte) bool { return isLower(c) || c == '_' },
		func(c byte) bool { return isLower(c) || isDigit(c) || c == '_' || c == '-' })
}

// ValidEnvName tells whether s is what systemd accepts as a variable name:
// ^[A-Za-z_][A-Za-z0-9_]*$.
func ValidEnvName(s string) bool {
	return span(s, 1, -1, func(c byte) bool { return isLower(c) || isUpper(c) || c == '_' },
		func(c byte) bool { return isLower(c) || isUpper(c) || isDigit(c) || c == '_' })
}

// validListenerName: ^[a-z][a-z0-9_-]{0,31}$
func validListenerName(s string) bool {
	return span(s, 1, 32, isLower, func(c byte) bool { return isLower(c) || isDigit(c) || c == '_' || c == '-' })
}

// validCredentialName is what sitectl accepts as a credential name: a file
// name in $CREDENTIALS_DIRECTORY, and the part before ":" of
// LoadCredential=. ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$
func validCredentialName(s string) bool {
	return span(s, 1, 64, func(c byte) bool { return isLower(c) || isUpper(c) || isDigit(c) || c == '_' },
		func(c byte) bool { return isLower(c) || isUpper(c) || isDigit(c) || c == '_' || c == '.' || c == '-' })
}

// parseDeployer reads a grant: user:NAME or group:NAME, NAME an account
// name or a numeric id; ^(user|group):([a-z_][a-z0-9_-]{0,30}|[0-9]{1,10})$.
func parseDeployer(s string) (kind, name string, ok bool) {
	for _, k := range []string{"user", "group"} {
		if len(s) > len(k) && s[:len(k)] == k && s[len(k)] == ':' {
			name = s[len(k)+1:]
			if validAccount(name) || span(name, 1, 10, isDigit, isDigit) {
				return k, name, true
			}
			return "", "", false
		}
	}
	return "", "", false
}
