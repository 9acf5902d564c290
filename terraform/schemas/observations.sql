SELECT * FROM `${project}`.`${dataset}`.observations_raw AS observations_raw WHERE TRUE QUALIFY ROW_NUMBER() OVER (PARTITION BY location_id, ts ORDER BY ingested_at DESC, run_id DESC) = 1
