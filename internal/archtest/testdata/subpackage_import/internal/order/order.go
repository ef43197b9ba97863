package order

type Service interface{}
