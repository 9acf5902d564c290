SELECT * FROM `${project}`.`${dataset}`.forecasts AS forecasts WHERE TRUE QUALIFY ROW_NUMBER() OVER (PARTITION BY location_id, target_ts ORDER BY issued_at DESC, created_at DESC, run_id DESC) = 1
