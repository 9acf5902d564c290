SELECT * FROM `${project}`.`${dataset}`.locations AS locations WHERE TRUE QUALIFY ROW_NUMBER() OVER (PARTITION BY location_id ORDER BY updated_at DESC) = 1
