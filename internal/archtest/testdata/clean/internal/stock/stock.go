package stock

type Service interface{ Reserve() error }
