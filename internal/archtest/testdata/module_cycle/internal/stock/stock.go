package stock

type Service interface{}
