module github.com/tether-endpoints/tether

go 1.26.8
