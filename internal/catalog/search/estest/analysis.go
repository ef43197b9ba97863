package estest

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// cjkStopWords is the stop list of Elasticsearch's cjk analyzer.
var cjkStopWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a and are as at be but by for if in into is it no not of on or
		s such t that the their then there these they this to was will with www`) {
		cjkStopWords[w] = true
	}
}

// builtinAnalyzers are the analyzers the server implements without configuration.
var builtinAnalyzers = map[string]bool{"standard": true, "simple": true, "whitespace": true, "keyword": true, "cjk": true}

// Analyze returns the terms analyzer produces for text, as this server indexes and searches
// them. "cjk" behaves like Elasticsearch's: standard tokenizer, cjk_width, lowercase,
// cjk_bigram (adjacent Han, Hiragana, Katakana and Hangul characters form bigrams; an
// isolated one stays a unigram), English stop words. Plugin analyzers registered with
// WithPluginAnalyzers behave like "cjk". "standard" lower-cases words and keeps each CJK
// character as its own term.
func Analyze(analyzer, text string) []string {
	switch analyzer {
	case "keyword":
		return []string{text}
	case "whitespace":
		return strings.Fields(text)
	case "simple":
		return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) })
	case "standard":
		var out []string
		for _, t := range standardTokens(text) {
			out = append(out, strings.ToLower(t.text))
		}
		return out
	default: // cjk and plugins
		return cjkAnalyze(text)
	}
}

type token struct {
	text       string
	start, end int // byte offsets
	cjk        bool
}

func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || r == '_'
}

// standardTokens approximates the standard (UAX #29) tokenizer: runs of letters and digits
// form words (an apostrophe or period between letters, a period or comma between digits,
// stays inside the word); every CJK character is a token of its own.
func standardTokens(text string) []token {
	var out []token
	start := -1
	flush := func(end int) {
		if start >= 0 {
			out = append(out, token{text: text[start:end], start: start, end: end})
			start = -1
		}
	}
	for i, r := range text {
		switch {
		case isCJK(r):
			flush(i)
			n := utf8.RuneLen(r)
			out = append(out, token{text: text[i : i+n], start: i, end: i + n, cjk: true})
		case isWordRune(r):
			if start < 0 {
				start = i
			}
		case start >= 0 && isMidWord(text, i, r):
			// stays inside the current word
		default:
			flush(i)
		}
	}
	flush(len(text))
	return out
}

func isMidWord(text string, i int, r rune) bool {
	prev, _ := utf8.DecodeLastRuneInString(text[:i])
	next, _ := utf8.DecodeRuneInString(text[i+utf8.RuneLen(r):])
	if isCJK(prev) || isCJK(next) {
		return false
	}
	switch r {
	case '\'', '’', ':', '·':
		return unicode.IsLetter(prev) && unicode.IsLetter(next)
	case '.':
		return (unicode.IsLetter(prev) && unicode.IsLetter(next)) || (unicode.IsDigit(prev) && unicode.IsDigit(next))
	case ',', ';':
		return unicode.IsDigit(prev) && unicode.IsDigit(next)
	}
	return false
}

// foldWidth maps full-width ASCII variants to ASCII (cjk_width).
func foldWidth(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 0xFF01 && r <= 0xFF5E {
			return r - 0xFEE0
		}
		if r == 0x3000 {
			return ' '
		}
		return r
	}, s)
}

func cjkAnalyze(text string) []string {
	toks := standardTokens(foldWidth(text))
	var out []string
	emit := func(s string) {
		s = strings.ToLower(s)
		if !cjkStopWords[s] {
			out = append(out, s)
		}
	}
	for i := 0; i < len(toks); {
		if !toks[i].cjk {
			emit(toks[i].text)
			i++
			continue
		}
		// a run of adjacent CJK characters
		j := i + 1
		for j < len(toks) && toks[j].cjk && toks[j].start == toks[j-1].end {
			j++
		}
		if j-i == 1 {
			emit(toks[i].text)
		}
		for k := i; k+1 < j; k++ {
			emit(toks[k].text + toks[k+1].text)
		}
		i = j
	}
	return out
}
