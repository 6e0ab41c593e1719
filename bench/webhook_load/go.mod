module baton/bench/webhook_load

go 1.26
