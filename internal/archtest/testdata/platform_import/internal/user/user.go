package user

type Service interface{}
