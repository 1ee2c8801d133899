"""HTTP: thin controllers (parse, call a service, shape the response), auth, problem details."""
