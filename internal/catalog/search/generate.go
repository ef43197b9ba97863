package search

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Generated data set: a deterministic catalog for seeds and benchmarks. 50 categories in a
// three-level tree (5 roots, 15 children, 30 leaves — products sit in leaves), 200 brands,
// merchants 1..20, titles in Chinese, English or both.
const (
	GeneratedMerchants = 20
	GeneratedBrandsN   = 200
)

// GeneratedCategory is a category of the generated tree (IDs 1..50; roots have ParentID 0).
type GeneratedCategory struct {
	ID, ParentID int64
	Name         string // Chinese
	NameEN       string
}

// GeneratedBrand is a brand of the generated data set (IDs 1..200).
type GeneratedBrand struct {
	ID   int64
	Name string
}

type genLeaf struct {
	zh, en    string
	basePrice int64 // fen
	specs     []string
}

type genBranch struct {
	zh, en string
	leaves [2]genLeaf
}

type genRoot struct {
	zh, en   string
	branches [3]genBranch
}

var genTree = [5]genRoot{
	{"家居", "Home", [3]genBranch{
		{"杯壶", "Drinkware", [2]genLeaf{{"保温杯", "Vacuum Flask", 8900, []string{"350ml", "500ml", "750ml"}}, {"马克杯", "Mug", 3900, []string{"300ml", "400ml"}}}},
		{"厨具", "Cookware", [2]genLeaf{{"炒锅", "Wok", 19900, []string{"30cm", "32cm"}}, {"菜刀", "Kitchen Knife", 12900, []string{"8寸", "6寸"}}}},
		{"家纺", "Bedding", [2]genLeaf{{"枕头", "Pillow", 9900, []string{"48x74cm", "40x60cm"}}, {"被子", "Quilt", 29900, []string{"1.5m", "1.8m", "2m"}}}},
	}},
	{"数码", "Digital", [3]genBranch{
		{"手机", "Phones", [2]genLeaf{{"智能手机", "Smartphone", 299900, []string{"128GB", "256GB", "512GB"}}, {"手机壳", "Phone Case", 3900, []string{"透明", "磨砂"}}}},
		{"音频", "Audio", [2]genLeaf{{"蓝牙耳机", "Bluetooth Earbuds", 29900, []string{"降噪版", "标准版"}}, {"音箱", "Speaker", 49900, []string{"10W", "20W"}}}},
		{"穿戴", "Wearables", [2]genLeaf{{"智能手表", "Smartwatch", 129900, []string{"41mm", "45mm"}}, {"手环", "Fitness Band", 19900, []string{"NFC版", "标准版"}}}},
	}},
	{"服饰", "Apparel", [3]genBranch{
		{"男装", "Menswear", [2]genLeaf{{"T恤", "T-Shirt", 7900, []string{"M", "L", "XL"}}, {"夹克", "Jacket", 39900, []string{"L", "XL", "XXL"}}}},
		{"女装", "Womenswear", [2]genLeaf{{"连衣裙", "Dress", 25900, []string{"S", "M", "L"}}, {"针织衫", "Cardigan", 19900, []string{"S", "M"}}}},
		{"鞋靴", "Shoes", [2]genLeaf{{"运动鞋", "Sneakers", 49900, []string{"40", "42", "44"}}, {"皮靴", "Boots", 59900, []string{"37", "39"}}}},
	}},
	{"食品", "Food", [3]genBranch{
		{"饮料", "Drinks", [2]genLeaf{{"咖啡", "Coffee", 6900, []string{"250g", "500g"}}, {"绿茶", "Green Tea", 8900, []string{"100g", "250g"}}}},
		{"零食", "Snacks", [2]genLeaf{{"坚果", "Mixed Nuts", 5900, []string{"500g", "1kg"}}, {"饼干", "Cookies", 2900, []string{"200g", "400g"}}}},
		{"粮油", "Staples", [2]genLeaf{{"大米", "Rice", 5900, []string{"5kg", "10kg"}}, {"橄榄油", "Olive Oil", 9900, []string{"500ml", "1L"}}}},
	}},
	{"美妆", "Beauty", [3]genBranch{
		{"护肤", "Skincare", [2]genLeaf{{"面霜", "Face Cream", 29900, []string{"50ml", "30ml"}}, {"精华液", "Serum", 49900, []string{"30ml", "50ml"}}}},
		{"彩妆", "Makeup", [2]genLeaf{{"口红", "Lipstick", 19900, []string{"#01", "#999"}}, {"粉底液", "Foundation", 34900, []string{"30ml"}}}},
		{"个护", "Personal Care", [2]genLeaf{{"洗发水", "Shampoo", 4900, []string{"400ml", "750ml"}}, {"牙膏", "Toothpaste", 1900, []string{"120g", "180g"}}}},
	}},
}

var (
	genAdjZH   = []string{"新款", "经典", "轻薄", "大容量", "便携", "高端", "简约", "时尚", "加厚", "升级版", "限量", "家用", "专业", "迷你", "复古"}
	genFeatZH  = []string{"不锈钢", "纯棉", "真皮", "有机", "防水", "无线", "快充", "静音", "抗菌", "进口", "手工", "原装", "长效", "透气", "保湿"}
	genAdjEN   = []string{"Classic", "Premium", "Portable", "Slim", "Pro", "Lite", "Deluxe", "Eco", "Smart", "Ultra", "Vintage", "Compact", "Everyday", "Travel", "Max"}
	genPointZH = []string{"包邮", "官方正品", "七天无理由退换", "限时特惠", "买一送一", "新品上市", "爆款热销", "顺丰发货", "品质保证", "年度好物"}
	genSyllA   = []string{"No", "Ka", "Ve", "Lu", "Mi", "Zo", "Ta", "Re", "Si", "Pa"}
	genSyllB   = []string{"rda", "vix", "lon", "mora", "teq", "nix", "vana", "ro", "ssa", "lix", "dora", "xel", "fin", "mar", "tek", "va", "ren", "zo", "bel", "dux"}
)

// GeneratedCategories returns the generated category tree, parents before children.
func GeneratedCategories() []GeneratedCategory {
	var out []GeneratedCategory
	for r, root := range genTree {
		out = append(out, GeneratedCategory{ID: int64(r + 1), Name: root.zh, NameEN: root.en})
	}
	for r, root := range genTree {
		for b, br := range root.branches {
			out = append(out, GeneratedCategory{ID: genBranchID(r, b), ParentID: int64(r + 1), Name: br.zh, NameEN: br.en})
		}
	}
	for r, root := range genTree {
		for b, br := range root.branches {
			for l, leaf := range br.leaves {
				out = append(out, GeneratedCategory{ID: genLeafID(r, b, l), ParentID: genBranchID(r, b), Name: leaf.zh, NameEN: leaf.en})
			}
		}
	}
	return out
}

func genBranchID(r, b int) int64             { return int64(6 + r*3 + b) }
func genLeafID(r, b, l int) int64            { return int64(21 + (r*3+b)*2 + l) }
func genBrandName(i int) string              { return genSyllA[i%10] + genSyllB[(i/10)%20] }
func genPick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

// GeneratedBrands returns the generated brands.
func GeneratedBrands() []GeneratedBrand {
	out := make([]GeneratedBrand, GeneratedBrandsN)
	for i := range out {
		out[i] = GeneratedBrand{ID: int64(i + 1), Name: genBrandName(i)}
	}
	return out
}

// GenerateProducts returns n products (IDs 1..n) generated deterministically from seed:
// the same arguments always give the same products. They use GeneratedCategories (leaf
// categories, with full paths), GeneratedBrands (one in ten without a brand) and merchants
// 1..GeneratedMerchants; prices scatter around a per-category base; CreatedAt spans 2024-2025.
func GenerateProducts(n int, seed int64) []Product {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6d616c6c)) // "mall"
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	const span = 2 * 365 * 24 * 3600
	out := make([]Product, n)
	for i := range out {
		r, b, l := rng.IntN(5), rng.IntN(3), rng.IntN(2)
		leaf := genTree[r].branches[b].leaves[l]
		p := Product{
			ID:           int64(i + 1),
			MerchantID:   int64(1 + rng.IntN(GeneratedMerchants)),
			CategoryID:   genLeafID(r, b, l),
			CategoryPath: []int64{int64(r + 1), genBranchID(r, b), genLeafID(r, b, l)},
			CreatedAt:    start.Add(time.Duration(rng.IntN(span)) * time.Second),
			Sales:        int64(rng.ExpFloat64() * 200),
		}
		brand := ""
		if rng.IntN(10) > 0 {
			bi := rng.IntN(GeneratedBrandsN)
			p.BrandID = int64(bi + 1)
			brand = genBrandName(bi)
		}
		spec := genPick(rng, leaf.specs)
		adjZH, featZH, adjEN := genPick(rng, genAdjZH), genPick(rng, genFeatZH), genPick(rng, genAdjEN)
		var title []string
		switch rng.IntN(10) {
		case 0, 1, 2, 3: // Chinese with a latin brand
			title = []string{brand, adjZH + featZH + leaf.zh, spec}
		case 4, 5, 6: // Chinese and English
			title = []string{featZH + leaf.zh, adjEN, leaf.en, spec}
		default: // English
			title = []string{brand, adjEN, leaf.en, spec}
		}
		p.Title = strings.Join(strings.Fields(strings.Join(title, " ")), " ")
		p.Subtitle = fmt.Sprintf("%s%s %s", adjZH, leaf.zh, genPick(rng, genPointZH))
		// price_min around the base (×0.5 .. ×2), ending in 9.90 yuan; some products have a range
		p.PriceMin = max(90, (leaf.basePrice*int64(50+rng.IntN(151))/100)/1000*1000-10)
		p.PriceMax = p.PriceMin
		if rng.IntN(2) == 0 {
			p.PriceMax += int64(rng.IntN(int(p.PriceMin/2)+1)) / 100 * 100
		}
		out[i] = p
	}
	return out
}
