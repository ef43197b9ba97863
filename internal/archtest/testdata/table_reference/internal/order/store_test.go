package order

// Tests are exempt: they may inspect any table.
const qCheck = "SELECT available FROM stock_levels WHERE sku_id = ?"
