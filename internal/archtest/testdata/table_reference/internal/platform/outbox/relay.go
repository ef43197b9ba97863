package outbox

const qBad = "UPDATE order_orders SET status = 'paid'"
