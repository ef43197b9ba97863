package search

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mallhq/mall/internal/catalog/search/estest"
	"github.com/mallhq/mall/internal/platform/config"
)

func newBleve(t *testing.T) Searcher {
	t.Helper()
	s, err := New(context.Background(), config.Search{Engine: "bleve", Bleve: config.SearchBleve{Path: filepath.Join(t.TempDir(), "idx", "search.bleve")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestBleveContract(t *testing.T) {
	t.Parallel()
	contractTest(t, newBleve)
}

func TestBleveReopenKeepsData(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "search.bleve")
	s, err := OpenBleve(path)
	if err != nil {
		t.Fatal(err)
	}
	indexed(t, s, fixtureProducts()...)
	before := mustSearch(t, s, Query{Q: "保温杯"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBleve(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after := mustSearch(t, s, Query{Q: "保温杯"})
	if !slices.Equal(after.Items, before.Items) || after.Total != 3 {
		t.Fatalf("after reopen: %+v, before: %+v", after, before)
	}
	// A rebuilt index is the one found at the path after a restart.
	if err := s.Rebuild(context.Background(), func(yield func(Product) error) error {
		return yield(fixtureProducts()[4])
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBleve(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := hitIDs(mustSearch(t, s, Query{})); !slices.Equal(got, []int64{105}) {
		t.Fatalf("after rebuild and reopen: %v", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directories left beside the index: %v", entries)
	}
}

// Two processes must not share an index directory: the second one is refused (after bolt's
// lock timeout) instead of corrupting it or hanging.
func TestBleveSecondOpenerIsRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "search.bleve")
	s, err := OpenBleve(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	second, err := OpenBleve(path)
	if err == nil || second != nil {
		t.Fatalf("second OpenBleve = %v, %v", second, err)
	}
	if _, err := New(context.Background(), config.Search{Engine: "bleve", Bleve: config.SearchBleve{Path: ""}}); err == nil {
		t.Fatal("New with an empty path succeeded")
	}
}

// A crash between the two renames of the swap leaves "<path>.old-*" and no path; a crash
// during a build leaves "<path>.new-*". Opening restores the old index and drops the new.
func TestBleveRecoversInterruptedRebuild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "search.bleve")
	s, err := OpenBleve(path)
	if err != nil {
		t.Fatal(err)
	}
	indexed(t, s, fixtureProducts()...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".old-0000000000000000001"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path+".new-0000000000000000002", "junk"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBleve(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if res := mustSearch(t, s, Query{}); res.Total != 10 {
		t.Fatalf("restored index holds %d products", res.Total)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "search.bleve" {
		t.Fatalf("left behind: %v", entries)
	}
}

// The bleve analyzer and the fake Elasticsearch's cjk analyzer must agree, or the contract
// suite would be testing two different things.
func TestBleveAnalyzerMatchesElasticsearchCJK(t *testing.T) {
	t.Parallel()
	m, err := bleveMapping()
	if err != nil {
		t.Fatal(err)
	}
	a := m.AnalyzerNamed(bleveAnalyzer)
	tests := []string{
		"保温杯",
		"不锈钢保温杯 500ml",
		"Thermos Vacuum Insulated Bottle",
		"THERMOS 焖烧罐",
		"ＴＨＥＲＭＯＳ",
		"iPhone 15 手机壳",
		"the thermos is in a bottle",
		"智能手机Pro Max",
		"单",
		"A 杯 B",
		"日本語のテキスト",
		"한국어 텍스트",
		"Stainless steel, keeps drinks hot",
		"Widget 测试 extra",
	}
	for _, give := range tests {
		var got []string
		for _, tok := range a.Analyze([]byte(give)) {
			got = append(got, string(tok.Term))
		}
		if want := estest.Analyze("cjk", give); !slices.Equal(got, want) {
			t.Errorf("%q: bleve %q, estest %q", give, got, want)
		}
	}
}
