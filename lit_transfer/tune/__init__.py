"""Transfer-learned tuning: acquisition functions, tuning methods (ask/tell), the budgeted loop, replay."""
