package payment

type Gateway struct{}
